"""Tiny random Gemma 3 text checkpoints (tttv2.testing.hf), built once per session and shared
by xdist workers, and the variants every comparison runs on.

Both have one local and one global layer that differ in everything a port can mix up:
window 8 / 6 (shorter than every prompt), a local RoPE base far from the global one, linear
RoPE scaling (factor 8) on the global layer only, ``query_pre_attn_scalar`` != ``head_dim``,
the QK-norm and all four sandwich norms perturbed away from zero. ``legacy-file`` is saved
in the older spelling real Gemma 3 checkpoints carry (``rope_theta``,
``rope_local_base_freq``, ``rope_scaling``, ``sliding_window_pattern`` and no
``layer_types``), with soft-capped logits and an ``attn_logit_softcapping`` that transformers
ignores; ``rope-parameters-layer-types`` in transformers 5's (``rope_parameters`` per layer
kind, explicit ``layer_types`` with the global layer first), with biases, one KV head,
sharded. Two layers each keep the CI job short; the default every-6th-global pattern is
checked against transformers in test_config.py."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tttv2.testing.model_kit import checkpoint_builder, shared_cache_dir, trained_checkpoint

#: Peaked logits (initializer_range 0.3) so greedy tokens and top-1 are not near-ties.
BASE: dict[str, Any] = {
    "initializer_range": 0.3,
    "max_position_embeddings": 256,
    "query_pre_attn_scalar": 32,
}

#: The keys transformers 5's save_pretrained writes that an older Gemma 3 config.json spells
#: differently (see legacy_spelling).
MODERN_KEYS = ("rope_parameters", "layer_types", "_sliding_window_pattern")

#: Older spelling of legacy-file's RoPE (what google/gemma-3-4b's text config looks like).
LEGACY_ROPE = {
    "rope_theta": 5000.0,
    "rope_local_base_freq": 100.0,
    "rope_scaling": {"rope_type": "linear", "factor": 8.0},
}
#: ... and its layers: layer i global when (i + 1) % 2 == 0.
LEGACY_PATTERN = {"sliding_window_pattern": 2}

VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (config overrides, build_tiny_checkpoint keyword arguments)
    "legacy-file": (
        {
            "num_hidden_layers": 2,
            "sliding_window": 8,
            **LEGACY_PATTERN,
            "tie_word_embeddings": False,
            "initializer_range": 0.1,
            "final_logit_softcapping": 15.0,
            "attn_logit_softcapping": 2.0,
            **LEGACY_ROPE,
        },
        {},
    ),  # fmt: skip
    "rope-parameters-layer-types": (
        {
            "num_hidden_layers": 2,
            "sliding_window": 6,
            "attention_bias": True,
            "num_key_value_heads": 1,
            "layer_types": ["full_attention", "sliding_attention"],
            "rope_parameters": {
                "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 10000.0},
                "sliding_attention": {"rope_type": "default", "rope_theta": 50.0},
            },
        },
        {"max_shard_size": "40KB"},
    ),  # fmt: skip
}


def legacy_spelling(checkpoint: Any, cache_dir: Path) -> Any:
    """``checkpoint`` with its config.json in the older spelling: the keys of LEGACY_ROPE
    and LEGACY_PATTERN, no ``rope_parameters`` / ``layer_types`` (transformers derives them).
    Weights are linked; the folder is shared by xdist workers (written atomically)."""
    folder = cache_dir / f"legacy-{checkpoint.path.name}"
    config = (
        {k: v for k, v in checkpoint.config.items() if k not in MODERN_KEYS}
        | LEGACY_ROPE
        | LEGACY_PATTERN
    )
    if not (folder / "config.json").is_file():
        tmp = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".legacy-"))
        for f in checkpoint.path.iterdir():
            if f.name != "config.json":
                os.link(f, tmp / f.name)
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        try:
            os.rename(tmp, folder)
        except OSError:  # another worker finished first
            shutil.rmtree(tmp, ignore_errors=True)
    return replace(checkpoint, path=folder, config=config)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory):
    return shared_cache_dir(tmp_path_factory, "gemma3-checkpoints")


@pytest.fixture(scope="session")
def build(cache_dir):
    """``build(config_overrides=None, **kwargs) -> TinyCheckpoint`` (legacy-file in its older spelling)."""
    builder = checkpoint_builder(cache_dir, "Gemma3ForCausalLM", BASE)

    def build_variant(overrides=None, **kwargs):
        ck = builder(overrides, **kwargs)
        return (
            legacy_spelling(ck, cache_dir)
            if overrides and "rope_local_base_freq" in overrides
            else ck
        )

    return build_variant


@pytest.fixture(scope="session", params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest, build):
    overrides, kwargs = VARIANTS[request.param]
    return build(overrides, **kwargs)


@pytest.fixture(scope="session")
def windowed(build):
    """The rope-parameters-layer-types variant (windows shorter than a cache block)."""
    overrides, kwargs = VARIANTS["rope-parameters-layer-types"]
    return build(overrides, **kwargs)


@pytest.fixture(scope="session")
def trained(build, cache_dir):
    """``(folder, token ids)``: the legacy-file variant trained to memorise 64 tokens."""
    overrides, kwargs = VARIANTS["legacy-file"]
    return trained_checkpoint(build(overrides, **kwargs), cache_dir)
