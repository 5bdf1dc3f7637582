"""Generation through tttv2.serve.runtime's engine with "Gemma2ForCausalLM" (tttv2.testing.model_kit):
seeded sampling, top-k membership under transformers, stop conditions, streamed text, and
continuous batching against transformers run on each prompt alone."""

from __future__ import annotations

import pytest
from tttv2_model_gemma2 import load

from tttv2.core.model_plugins import find_model_plugin
from tttv2.testing.model_kit import (
    check_continuous_batching,
    check_sampled_tokens_in_reference_top_k,
    check_seeded_sampling,
    check_stops,
    check_streamed_text,
)


@pytest.fixture(scope="module")
def tiny(build):
    ck = build({"tie_word_embeddings": True, "initializer_range": 0.1})
    return ck, load(ck.path)


def test_the_entry_point_is_this_plugin():
    from tttv2_model_gemma2 import plugin

    assert find_model_plugin("Gemma2ForCausalLM") is plugin


def test_sampling_stops_and_streaming(tiny):
    ck, loaded = tiny
    check_seeded_sampling(loaded, ck.vocab_size)
    check_sampled_tokens_in_reference_top_k(loaded, ck)
    check_stops(loaded, ck.vocab_size)
    check_streamed_text(loaded, ck.vocab_size)


def test_continuous_batching_matches_transformers_alone(build):
    ck = build()
    check_continuous_batching(load(ck.path), ck)
