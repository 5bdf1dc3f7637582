"""Tiny random Qwen2 checkpoints (tttv2.testing.hf), built once per session and shared by
xdist workers, and the variants every comparison runs on: q/k/v biases always (perturbed,
so a dropped bias shows), a tied head, and each way Qwen2Config places sliding windows
(windows shorter than every test prompt and than a 16-token cache block)."""

from __future__ import annotations

from typing import Any

import pytest

from tttv2.testing.model_kit import checkpoint_builder, shared_cache_dir, trained_checkpoint

#: Peaked logits (initializer_range 0.3) so greedy tokens and top-1 are not near-ties.
BASE: dict[str, Any] = {"initializer_range": 0.3, "max_position_embeddings": 256}

VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (config overrides, build_tiny_checkpoint keyword arguments)
    "tied-window-off": (
        {"tie_word_embeddings": True, "use_sliding_window": False, "sliding_window": 5},
        {},
    ),
    "window-7-from-layer-1": (
        {
            "use_sliding_window": True,
            "sliding_window": 7,
            "max_window_layers": 1,
            "num_key_value_heads": 1,
        },
        {},
    ),
    "layer-types-sharded": (
        {
            "use_sliding_window": True,
            "sliding_window": 5,
            "max_window_layers": 0,
            "layer_types": ["sliding_attention", "full_attention"],
        },
        {"max_shard_size": "40KB"},
    ),
}


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory):
    return shared_cache_dir(tmp_path_factory, "qwen2-checkpoints")


@pytest.fixture(scope="session")
def build(cache_dir):
    """``build(config_overrides=None, **kwargs) -> TinyCheckpoint``."""
    return checkpoint_builder(cache_dir, "Qwen2ForCausalLM", BASE)


@pytest.fixture(scope="session", params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest, build):
    overrides, kwargs = VARIANTS[request.param]
    return build(overrides, **kwargs)


@pytest.fixture(scope="session")
def windowed(build):
    overrides, kwargs = VARIANTS["window-7-from-layer-1"]
    return build(overrides, **kwargs)


@pytest.fixture(scope="session")
def trained(windowed, cache_dir):
    """``(folder, token ids)``: the windowed variant trained to memorise 64 tokens."""
    return trained_checkpoint(windowed, cache_dir)
