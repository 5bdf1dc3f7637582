"""Tiny random "Gemma3ForCausalLM" checkpoints (tttv2.testing.hf), built once per session and
shared by xdist workers, and the variants every comparison runs on."""

from __future__ import annotations

from typing import Any

import pytest

from tttv2.testing.model_kit import checkpoint_builder, shared_cache_dir, trained_checkpoint

#: Peaked logits (initializer_range 0.3) so greedy tokens and top-1 are not near-ties.
BASE: dict[str, Any] = {"initializer_range": 0.3, "max_position_embeddings": 256}

VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (config overrides, build_tiny_checkpoint keyword arguments)
    "untied-qknorm-two-ropes": (
        {"tie_word_embeddings": False, "num_hidden_layers": 3, "sliding_window_pattern": 3,
         "sliding_window": 8, "query_pre_attn_scalar": 24, "rope_parameters": {
             "full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 1_000_000.0},
             "sliding_attention": {"rope_type": "default", "rope_theta": 100.0}}},
        {},
    ),  # fmt: skip
    "layer-types-softcaps-sharded": (
        {"layer_types": ["full_attention", "sliding_attention"], "sliding_window": 6,
         "attn_logit_softcapping": 4.0, "final_logit_softcapping": 30.0, "tie_word_embeddings": False, "initializer_range": 0.1,
         "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 5000.0},
                             "sliding_attention": {"rope_type": "default", "rope_theta": 50.0}}},
        {"max_shard_size": "40KB"},
    ),  # fmt: skip
}


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory):
    return shared_cache_dir(tmp_path_factory, "gemma3-checkpoints")


@pytest.fixture(scope="session")
def build(cache_dir):
    """``build(config_overrides=None, **kwargs) -> TinyCheckpoint``."""
    return checkpoint_builder(cache_dir, "Gemma3ForCausalLM", BASE)


@pytest.fixture(scope="session", params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest, build):
    overrides, kwargs = VARIANTS[request.param]
    return build(overrides, **kwargs)


@pytest.fixture(scope="session")
def trained(build, cache_dir):
    """``(folder, token ids)``: the untied-qknorm-two-ropes variant trained to memorise 64 tokens."""
    overrides, kwargs = VARIANTS["untied-qknorm-two-ropes"]
    return trained_checkpoint(build(overrides, **kwargs), cache_dir)
