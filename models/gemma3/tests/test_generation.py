"""Generation through tttv2.serve.runtime's engine with Gemma 3 (tttv2.testing.model_kit): the
entry point, and on a tied-head checkpoint seeded sampling, top-k membership under
transformers, stop conditions and streamed text."""

from __future__ import annotations

import pytest
from tttv2_model_gemma3 import load

from tttv2.core.model_plugins import find_model_plugin
from tttv2.testing.model_kit import (
    check_sampled_tokens_in_reference_top_k,
    check_seeded_sampling,
    check_stops,
    check_streamed_text,
)


@pytest.fixture(scope="module")
def tiny(build):
    """Tied head (Gemma3TextConfig's default), window 4, default layer pattern on 2 layers (both local)."""
    ck = build({"tie_word_embeddings": True, "initializer_range": 0.1, "sliding_window": 4})
    return ck, load(ck.path)


def test_the_entry_point_is_this_plugin():
    from tttv2_model_gemma3 import plugin

    assert find_model_plugin("Gemma3ForCausalLM") is plugin


def test_sampling_stops_and_streaming(tiny):
    ck, loaded = tiny
    assert loaded.model.spec.lm_head.tied
    check_seeded_sampling(loaded, ck.vocab_size)
    check_sampled_tokens_in_reference_top_k(loaded, ck)
    check_stops(loaded, ck.vocab_size)
    check_streamed_text(loaded, ck.vocab_size)
