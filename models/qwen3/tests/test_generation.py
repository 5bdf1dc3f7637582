"""Generation through tttv2.serve.runtime's engine with Qwen3 (tttv2.testing.model_kit):
the entry point, seeded sampling, top-k membership under transformers, stop conditions and
streamed text."""

from __future__ import annotations

import pytest
from tttv2_model_qwen3 import load

from tttv2.core.model_plugins import find_model_plugin
from tttv2.testing.model_kit import (
    check_sampled_tokens_in_reference_top_k,
    check_seeded_sampling,
    check_stops,
    check_streamed_text,
)


@pytest.fixture(scope="module")
def tiny(windowed):
    return windowed, load(windowed.path)


def test_the_entry_point_is_this_plugin():
    from tttv2_model_qwen3 import plugin

    assert find_model_plugin("Qwen3ForCausalLM") is plugin


def test_sampling_stops_and_streaming(tiny):
    ck, loaded = tiny
    check_seeded_sampling(loaded, ck.vocab_size)
    check_sampled_tokens_in_reference_top_k(loaded, ck)
    check_stops(loaded, ck.vocab_size)
    check_streamed_text(loaded, ck.vocab_size)
