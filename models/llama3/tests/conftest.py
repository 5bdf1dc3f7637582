"""Tiny random Llama checkpoints (tttv2.testing.hf), built once per session and shared by
xdist workers, and the variants every comparison runs on."""

from __future__ import annotations

from typing import Any

import pytest

from tttv2.testing.model_kit import checkpoint_builder, shared_cache_dir, trained_checkpoint

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


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory):
    return shared_cache_dir(tmp_path_factory, "llama3-checkpoints")


@pytest.fixture(scope="session")
def build(cache_dir):
    """``build(config_overrides=None, **kwargs) -> TinyCheckpoint``."""
    return checkpoint_builder(cache_dir, "LlamaForCausalLM", BASE)


@pytest.fixture(scope="session", params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest, build):
    overrides, kwargs = VARIANTS[request.param]
    return build(overrides, **kwargs)


@pytest.fixture(scope="session")
def trained(build, cache_dir):
    """A tiny untied Llama with llama3 RoPE scaling, trained to memorise 64 tokens:
    ``(folder, those token ids)`` (see tttv2.testing.model_kit.trained_checkpoint)."""
    overrides, kwargs = VARIANTS["llama3.1-rope-scaling"]
    return trained_checkpoint(build(overrides, **kwargs), cache_dir)
