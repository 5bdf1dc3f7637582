"""Generation through tttv2.serve.runtime's engine with Mixtral (tttv2.testing.model_kit):
the entry point, seeded sampling, top-k membership under transformers, stop conditions,
streamed text, and continuous batching against transformers run on each prompt alone."""

from __future__ import annotations

import pytest
import torch
from tttv2_model_mixtral import load

from tttv2.core.model_plugins import find_model_plugin
from tttv2.testing.model_kit import (
    check_continuous_batching,
    check_sampled_tokens_in_reference_top_k,
    check_seeded_sampling,
    check_stops,
    check_streamed_text,
)


@pytest.fixture(scope="module")
def tiny(windowed):
    return windowed, load(windowed.path)


def test_the_entry_point_is_this_plugin():
    from tttv2_model_mixtral import plugin

    assert find_model_plugin("MixtralForCausalLM") is plugin


def test_sampling_stops_and_streaming(tiny):
    ck, loaded = tiny
    check_seeded_sampling(loaded, ck.vocab_size)
    check_sampled_tokens_in_reference_top_k(loaded, ck)
    check_stops(loaded, ck.vocab_size)
    check_streamed_text(loaded, ck.vocab_size)


def test_continuous_batching_matches_transformers_alone(windowed):
    loaded = load(windowed.path, dtype=torch.float32)
    check_continuous_batching(loaded, windowed)
    # on CPU the decode passes ran fused, the mixture-of-experts layers in the native call too
    # (tttv2-hw 3.3 / tttv2-blocks 3.3), so the tokens above are that path's
    assert loaded.model.decode_path.kind == "fused"
    assert loaded.model.fused_decode_reason is None
