"""Tiny random Mixtral checkpoints (tttv2.testing.hf), built once per session and shared by
xdist workers, and the variants every comparison runs on: 8 experts top-2 with a 7-token
window (shorter than every prompt and than a 16-token cache block), and 4 experts top-3,
tied, no window, sharded into several safetensors files."""

from __future__ import annotations

from typing import Any

import pytest

from tttv2.testing.model_kit import checkpoint_builder, shared_cache_dir, trained_checkpoint

#: Peaked logits (initializer_range 0.3) so greedy tokens, top-1 and the routers' choices
#: are not near-ties.
BASE: dict[str, Any] = {
    "initializer_range": 0.3, "max_position_embeddings": 256, "num_local_experts": 8, "num_experts_per_tok": 2,
}  # fmt: skip

VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (config overrides, build_tiny_checkpoint keyword arguments)
    "8x2-window-7": ({"sliding_window": 7}, {}),
    "4x3-tied-sharded": (
        {
            "num_local_experts": 4,
            "num_experts_per_tok": 3,
            "sliding_window": None,
            "tie_word_embeddings": True,
        },
        {"max_shard_size": "100KB"},
    ),
}


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory):
    return shared_cache_dir(tmp_path_factory, "mixtral-checkpoints")


@pytest.fixture(scope="session")
def build(cache_dir):
    """``build(config_overrides=None, **kwargs) -> TinyCheckpoint``."""
    return checkpoint_builder(cache_dir, "MixtralForCausalLM", BASE)


@pytest.fixture(scope="session", params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest, build):
    overrides, kwargs = VARIANTS[request.param]
    return build(overrides, **kwargs)


@pytest.fixture(scope="session")
def windowed(build):
    overrides, kwargs = VARIANTS["8x2-window-7"]
    return build(overrides, **kwargs)


@pytest.fixture(scope="session")
def trained(windowed, cache_dir):
    """``(folder, token ids)``: the 8x2 window-7 variant trained to memorise 64 tokens."""
    return trained_checkpoint(windowed, cache_dir)
