"""Tiny random Llama checkpoints (tttv2.testing.hf), built once per session and shared by
xdist workers, and the variants every comparison runs on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

#: Peaked logits (initializer_range 0.3) so greedy tokens and top-1 are not near-ties.
BASE: dict[str, Any] = {"initializer_range": 0.3, "max_position_embeddings": 256}

LLAMA3_ROPE = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 32,
}

VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (config overrides, build_tiny_checkpoint keyword arguments)
    "llama2-untied": ({"tie_word_embeddings": False}, {}),
    "llama3.2-tied": ({"tie_word_embeddings": True, "rope_theta": 500000.0}, {}),
    "llama3.1-rope-scaling": ({"rope_theta": 500000.0, "rope_scaling": LLAMA3_ROPE}, {}),
    "sharded-gqa-bias": (
        {"num_key_value_heads": 1, "attention_bias": True, "mlp_bias": True},
        {"max_shard_size": "40KB"},
    ),
}


def _shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # one folder for every worker: builds are atomic
    return root / "llama3-checkpoints"


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory):
    """``build(config_overrides=None, **kwargs) -> TinyCheckpoint``."""
    from tttv2.testing.hf import build_tiny_checkpoint

    cache = _shared_cache(tmp_path_factory)

    def make(overrides: dict[str, Any] | None = None, **kwargs: Any):
        return build_tiny_checkpoint(
            cache, "LlamaForCausalLM", {**BASE, **(overrides or {})}, **kwargs
        )

    return make


@pytest.fixture(scope="session", params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest, build):
    overrides, kwargs = VARIANTS[request.param]
    return build(overrides, **kwargs)


TRAIN_TOKENS, TRAIN_STEPS = 64, 50


@pytest.fixture(scope="session")
def trained(build, tmp_path_factory):
    """A tiny untied Llama with llama3 RoPE scaling, trained to memorise the first 64
    tokens of tttv2.testing.hf's corpus: ``(folder, those token ids)``.

    Random weights give nearly flat next-token distributions, on which bfloat16 rounding
    alone flips the top-1 token at a few percent of positions (even transformers' bf16
    against its own fp32); a trained model is confident, as real checkpoints are, so
    top-1 agreement measures the implementation rather than coin flips."""
    import shutil
    import tempfile

    import torch

    from tttv2.testing.hf.corpus import CORPUS

    overrides, kwargs = VARIANTS["llama3.1-rope-scaling"]
    ck = build(overrides, **kwargs)
    ids = torch.tensor(ck.load_tokenizer().encode(" ".join(CORPUS)).ids[:TRAIN_TOKENS])
    folder = _shared_cache(tmp_path_factory) / f"trained-{ck.path.name}"
    if not (folder / "config.json").is_file():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = ck.load_model().train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
            for _ in range(TRAIN_STEPS):
                loss = model(ids[None], labels=ids[None]).loss
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".trained-"))
        model.eval().save_pretrained(tmp)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(ck.path / name, tmp / name)
        try:
            os.rename(tmp, folder)
        except OSError:  # another worker finished first
            shutil.rmtree(tmp, ignore_errors=True)
    return folder, ids.tolist()
