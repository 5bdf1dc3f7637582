"""Tiny random "GPT2LMHeadModel" checkpoints (tttv2.testing.hf), built once per session and
shared by xdist workers, and the variants every comparison runs on."""

from __future__ import annotations

from typing import Any

import pytest

from tttv2.testing.model_kit import checkpoint_builder, shared_cache_dir, trained_checkpoint

#: Peaked logits (initializer_range 0.3) so greedy tokens and top-1 are not near-ties.
BASE: dict[str, Any] = {"initializer_range": 0.3, "max_position_embeddings": 256}

VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (config overrides, build_tiny_checkpoint keyword arguments)
    "tied-gelu_new": ({"tie_word_embeddings": True}, {}),
    "untied-scaled-by-layer-n_inner": (
        {"scale_attn_by_inverse_layer_idx": True, "n_inner": 96, "layer_norm_epsilon": 1e-3},
        {},
    ),
    "sharded-unscaled-gelu": (
        {"scale_attn_weights": False, "activation_function": "gelu", "initializer_range": 0.1},
        {"max_shard_size": "40KB"},
    ),
}


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory):
    return shared_cache_dir(tmp_path_factory, "gpt2-checkpoints")


@pytest.fixture(scope="session")
def build(cache_dir):
    """``build(config_overrides=None, **kwargs) -> TinyCheckpoint``."""
    return checkpoint_builder(cache_dir, "GPT2LMHeadModel", BASE)


@pytest.fixture(scope="session", params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest, build):
    overrides, kwargs = VARIANTS[request.param]
    return build(overrides, **kwargs)


@pytest.fixture(scope="session")
def trained(build, cache_dir):
    """``(folder, token ids)``: the tied variant trained to memorise 64 tokens."""
    overrides, kwargs = VARIANTS["tied-gelu_new"]
    return trained_checkpoint(build(overrides, **kwargs), cache_dir)
