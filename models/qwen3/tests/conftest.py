"""Tiny random Qwen3 checkpoints (tttv2.testing.hf), built once per session and shared by
xdist workers, and the variants every comparison runs on: per-head q/k RMSNorm always (its
weights perturbed, so a skipped norm shows), head_dim 24 with 4 heads on a 64-wide model
(not 64 / 4), a tied head, and biases with a sliding window on layer 1 (7 tokens, shorter
than every test prompt and than a 16-token cache block)."""

from __future__ import annotations

from typing import Any

import pytest

from tttv2.testing.model_kit import checkpoint_builder, shared_cache_dir, trained_checkpoint

#: Peaked logits (initializer_range 0.3) so greedy tokens and top-1 are not near-ties.
BASE: dict[str, Any] = {"initializer_range": 0.3, "max_position_embeddings": 256}

VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (config overrides, build_tiny_checkpoint keyword arguments)
    "head-dim-24-tied": ({"head_dim": 24, "tie_word_embeddings": True}, {}),
    "bias-window-7-sharded": (
        {
            "attention_bias": True,
            "use_sliding_window": True,
            "sliding_window": 7,
            "max_window_layers": 1,
            "num_key_value_heads": 1,
        },
        {"max_shard_size": "40KB"},
    ),  # fmt: skip
}


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory):
    return shared_cache_dir(tmp_path_factory, "qwen3-checkpoints")


@pytest.fixture(scope="session")
def build(cache_dir):
    """``build(config_overrides=None, **kwargs) -> TinyCheckpoint``."""
    return checkpoint_builder(cache_dir, "Qwen3ForCausalLM", BASE)


@pytest.fixture(scope="session", params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest, build):
    overrides, kwargs = VARIANTS[request.param]
    return build(overrides, **kwargs)


@pytest.fixture(scope="session")
def windowed(build):
    overrides, kwargs = VARIANTS["bias-window-7-sharded"]
    return build(overrides, **kwargs)


@pytest.fixture(scope="session")
def trained(build, cache_dir):
    """``(folder, token ids)``: the head_dim-24 variant trained to memorise 64 tokens."""
    overrides, kwargs = VARIANTS["head-dim-24-tied"]
    return trained_checkpoint(build(overrides, **kwargs), cache_dir)
