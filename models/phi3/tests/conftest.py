"""Tiny random "Phi3ForCausalLM" checkpoints (tttv2.testing.hf), built once per session and
shared by xdist workers, and the variants every comparison runs on."""

from __future__ import annotations

from typing import Any

import pytest

from tttv2.testing.model_kit import checkpoint_builder, shared_cache_dir, trained_checkpoint

#: Peaked logits (initializer_range 0.3) so greedy tokens and top-1 are not near-ties.
#: pad_token_id: Phi3Config defaults it to 32000, past the tiny vocabulary.
BASE: dict[str, Any] = {
    "initializer_range": 0.3,
    "max_position_embeddings": 256,
    "pad_token_id": None,
}

#: head_dim 16 (TINY_DEFAULTS): 8 factors; LongRoPE switches past 128 tokens.
ORIGINAL = 128
LONGROPE: dict[str, Any] = {
    "original_max_position_embeddings": ORIGINAL,
    "rope_scaling": {
        "rope_type": "longrope",
        "short_factor": [1.0, 1.05, 1.1, 1.2, 1.3, 1.5, 1.7, 2.0],
        "long_factor": [1.0, 1.3, 1.8, 2.5, 3.2, 4.0, 5.5, 7.0],
    },
}
#: Phi-4-mini: 3/4 of each head rotated (6 factors), tied head.
PARTIAL: dict[str, Any] = {
    "original_max_position_embeddings": ORIGINAL,
    "partial_rotary_factor": 0.75,
    "tie_word_embeddings": True,
    "rope_scaling": {
        "rope_type": "longrope",
        "short_factor": [1.0, 1.1, 1.2, 1.4, 1.6, 2.0],
        "long_factor": [1.2, 1.9, 2.7, 3.6, 5.0, 6.5],
    },
}

VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (config overrides, build_tiny_checkpoint keyword arguments)
    "phi3-longrope": (LONGROPE, {}),
    "phi4mini-partial-rotary-tied": (PARTIAL, {}),
    "sharded-sliding-window": ({"sliding_window": 16}, {"max_shard_size": "40KB"}),
}


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory):
    return shared_cache_dir(tmp_path_factory, "phi3-checkpoints")


@pytest.fixture(scope="session")
def build(cache_dir):
    """``build(config_overrides=None, **kwargs) -> TinyCheckpoint``."""
    return checkpoint_builder(cache_dir, "Phi3ForCausalLM", BASE)


@pytest.fixture(scope="session", params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest, build):
    overrides, kwargs = VARIANTS[request.param]
    return build(overrides, **kwargs)


@pytest.fixture(scope="session")
def trained(build, cache_dir):
    """``(folder, token ids)``: the LongRoPE variant trained to memorise 64 tokens."""
    overrides, kwargs = VARIANTS["phi3-longrope"]
    return trained_checkpoint(build(overrides, **kwargs), cache_dir)
