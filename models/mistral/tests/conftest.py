"""Tiny random MistralForCausalLM checkpoints (tttv2.testing.hf), built once per session and
shared by xdist workers, and the variants every comparison runs on."""

from __future__ import annotations

from typing import Any

import pytest

from tttv2.testing.model_kit import checkpoint_builder, shared_cache_dir, trained_checkpoint

#: Peaked logits (initializer_range 0.3) so greedy tokens and top-1 are not near-ties.
BASE: dict[str, Any] = {"initializer_range": 0.3, "max_position_embeddings": 256}

VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (config overrides, build_tiny_checkpoint keyword arguments); add the variants
    # this architecture's config allows (RoPE scalings, biases, windows, ...)
    "untied": ({"tie_word_embeddings": False}, {}),
    "tied": ({"tie_word_embeddings": True}, {}),
    "sharded": ({}, {"max_shard_size": "40KB"}),
    "window-8": ({"sliding_window": 8}, {}),  # shorter than the 24-token prompt
}


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory):
    return shared_cache_dir(tmp_path_factory, "mistral-checkpoints")


@pytest.fixture(scope="session")
def build(cache_dir):
    """``build(config_overrides=None, **kwargs) -> TinyCheckpoint``."""
    return checkpoint_builder(cache_dir, "MistralForCausalLM", BASE)


@pytest.fixture(scope="session", params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest, build):
    overrides, kwargs = VARIANTS[request.param]
    return build(overrides, **kwargs)


@pytest.fixture(scope="session")
def trained(build, cache_dir):
    """``(folder, token ids)``: the untied variant trained to memorise 64 tokens."""
    overrides, kwargs = VARIANTS["untied"]
    return trained_checkpoint(build(overrides, **kwargs), cache_dir)
