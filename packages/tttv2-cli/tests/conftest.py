"""CLI tests that run a real model need the Llama plugin (models/llama3) installed in the
environment; they are skipped, with that reason, where it is not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

LLAMA = "LlamaForCausalLM"


def _shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


@pytest.fixture(scope="session")
def llama_plugin() -> None:
    from tttv2.core.model_plugins import list_model_plugins

    if LLAMA not in list_model_plugins():
        pytest.skip(
            "the LlamaForCausalLM model plugin (models/llama3) is not installed in this environment"
        )


@pytest.fixture(scope="session")
def tiny_llama(llama_plugin, tmp_path_factory):
    """A tiny random Llama checkpoint (tttv2.testing.hf) with a tokenizer."""
    from tttv2.testing.hf import build_tiny_checkpoint

    return build_tiny_checkpoint(
        _shared(tmp_path_factory) / "cli-checkpoints", LLAMA, {"initializer_range": 0.3}
    )


@pytest.fixture(scope="session")
def trained_llama(llama_plugin, tmp_path_factory):
    """A tiny Llama trained (with the built-in checkpoint's recipe, tttv2.cli.default_training)
    to recite ``tttv2 validate``'s input text. Random weights give near-tied top-1 logits
    that bfloat16 rounding flips (even within transformers); a trained model is confident,
    as real checkpoints are, so bfloat16 top-1 agreement measures the implementation."""
    import shutil
    import tempfile

    from tttv2.cli.commands.validate import VALIDATION_TEXT
    from tttv2.cli.default_training import train, training_batch
    from tttv2.testing.hf import build_tiny_checkpoint

    root = _shared(tmp_path_factory) / "cli-checkpoints"
    ck = build_tiny_checkpoint(root, LLAMA, {})
    folder = root / f"trained-{ck.path.name}"
    if not (folder / "config.json").is_file():
        model = ck.load_model()
        inputs, labels = training_batch(
            ck.load_tokenizer(), int(ck.config["eos_token_id"]), (VALIDATION_TEXT,)
        )
        train(model, inputs, labels, steps=100)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".trained-"))
        model.save_pretrained(tmp)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(ck.path / name, tmp / name)
        try:
            os.rename(tmp, folder)
        except OSError:  # another worker finished first
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


OLD_DEFAULT = "llama-tiny-v1"


@pytest.fixture(scope="session")
def built_default(llama_plugin, tmp_path_factory):
    """A cache root (for ``TTTV2_CACHE_DIR``) holding the built-in checkpoint, built once per
    session, next to an untrained one cached by an earlier version (``llama-tiny-v1``) that
    must be ignored. Its ``native/`` is the usual cache's, so native kernels compiled there
    are reused instead of compiled again."""
    import json

    from tttv2.cli.default_checkpoint import ARCHITECTURE, DEFAULT_CONFIG, READY
    from tttv2.hw.cache import cache_dir

    native = cache_dir() / "native"
    native.mkdir(parents=True, exist_ok=True)
    root = tmp_path_factory.mktemp("default-cache")
    (root / "native").symlink_to(native, target_is_directory=True)
    old = root / "checkpoints" / OLD_DEFAULT
    old.mkdir(parents=True)
    (old / READY).write_text(
        json.dumps({"architecture": ARCHITECTURE, "seed": 0, "config": DEFAULT_CONFIG})
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TTTV2_CACHE_DIR", str(root))
        from tttv2.cli.default_checkpoint import default_checkpoint

        default_checkpoint()
    return root
