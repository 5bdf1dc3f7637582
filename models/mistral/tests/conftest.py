"""Tiny random Mistral checkpoints (tttv2.testing.hf), built once per session and shared by
xdist workers, and the variants every comparison runs on. Every windowed variant's window
is shorter than the test prompts (24 to 96 tokens) and than a 16-token cache block."""

from __future__ import annotations

from typing import Any

import pytest

from tttv2.testing.model_kit import checkpoint_builder, shared_cache_dir, trained_checkpoint

#: Peaked logits (initializer_range 0.3) so greedy tokens and top-1 are not near-ties.
BASE: dict[str, Any] = {"initializer_range": 0.3, "max_position_embeddings": 256}

VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (config overrides, build_tiny_checkpoint keyword arguments)
    "window-7-gqa": ({"sliding_window": 7, "num_key_value_heads": 2}, {}),
    "window-null-tied": ({"sliding_window": None, "tie_word_embeddings": True}, {}),
    "window-12-mqa-sharded": (
        {"sliding_window": 12, "num_key_value_heads": 1},
        {"max_shard_size": "40KB"},
    ),
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
def windowed(build):
    overrides, kwargs = VARIANTS["window-7-gqa"]
    return build(overrides, **kwargs)


@pytest.fixture(scope="session")
def trained(windowed, cache_dir):
    """``(folder, token ids)``: the window-7 variant trained to memorise 64 tokens."""
    return trained_checkpoint(windowed, cache_dir)
