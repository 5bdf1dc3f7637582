"""Tiny random "Gemma2ForCausalLM" checkpoints (tttv2.testing.hf), built once per session and
shared by xdist workers, and the variants every comparison runs on."""

from __future__ import annotations

from typing import Any

import pytest

from tttv2.testing.model_kit import checkpoint_builder, shared_cache_dir, trained_checkpoint

#: Peaked logits (initializer_range 0.3) so greedy tokens and top-1 are not near-ties.
BASE: dict[str, Any] = {"initializer_range": 0.3, "max_position_embeddings": 256}

VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (config overrides, build_tiny_checkpoint keyword arguments). Two layers: layer 0
    # local (window 8, shorter than every prompt), layer 1 global, unless layer_types says.
    "untied-softcaps-window": (
        {
            "tie_word_embeddings": False,
            "sliding_window": 8,
            "query_pre_attn_scalar": 32,
            "initializer_range": 0.1,
            "attn_logit_softcapping": 4.0,
            "final_logit_softcapping": 15.0,
        },
        {},
    ),  # fmt: skip
    "untied-no-caps-layer-types-bias-sharded": (
        {
            "sliding_window": 6,
            "layer_types": ["full_attention", "sliding_attention"],
            "attn_logit_softcapping": None,
            "final_logit_softcapping": None,
            "attention_bias": True,
            "tie_word_embeddings": False,
        },
        {"max_shard_size": "40KB"},
    ),  # fmt: skip
}


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory):
    return shared_cache_dir(tmp_path_factory, "gemma2-checkpoints")


@pytest.fixture(scope="session")
def build(cache_dir):
    """``build(config_overrides=None, **kwargs) -> TinyCheckpoint``."""
    return checkpoint_builder(cache_dir, "Gemma2ForCausalLM", BASE)


@pytest.fixture(scope="session", params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest, build):
    overrides, kwargs = VARIANTS[request.param]
    return build(overrides, **kwargs)


@pytest.fixture(scope="session")
def trained(build, cache_dir):
    """``(folder, token ids)``: the untied-softcaps-window variant trained to memorise 64 tokens."""
    overrides, kwargs = VARIANTS["untied-softcaps-window"]
    return trained_checkpoint(build(overrides, **kwargs), cache_dir)
