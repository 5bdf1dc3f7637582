"""Generation through tttv2.serve.runtime's engine with Qwen2-MoE and Qwen3-MoE
(tttv2.testing.model_kit): the entry points, seeded sampling, top-k membership under
transformers, stop conditions, streamed text, and continuous batching (fp32, windowed,
dense and sparse layers mixed) against transformers run on each prompt alone."""

from __future__ import annotations

import pytest
import torch
from loads import load_for

from tttv2.core.model_plugins import find_model_plugin
from tttv2.testing.model_kit import (
    check_continuous_batching,
    check_sampled_tokens_in_reference_top_k,
    check_seeded_sampling,
    check_stops,
    check_streamed_text,
)


@pytest.mark.parametrize(
    ("architecture", "module"),
    [("Qwen2MoeForCausalLM", "qwen2_moe"), ("Qwen3MoeForCausalLM", "qwen3_moe")],
)
def test_the_entry_points_are_this_projects_plugins(architecture, module):
    import importlib

    assert find_model_plugin(architecture) is importlib.import_module(
        f"tttv2_model_qwen_moe.{module}"
    )


def test_sampling_stops_and_streaming(windowed):
    loaded = load_for(windowed)(windowed.path)
    check_seeded_sampling(loaded, windowed.vocab_size)
    check_sampled_tokens_in_reference_top_k(loaded, windowed)
    check_stops(loaded, windowed.vocab_size)
    check_streamed_text(loaded, windowed.vocab_size)


def test_continuous_batching_matches_transformers_alone(windowed):
    loaded = load_for(windowed)(windowed.path, dtype=torch.float32)
    check_continuous_batching(loaded, windowed)
    # on CPU the decode passes ran fused, the mixture-of-experts layers in the native call too
    # (tttv2-hw 3.3 / tttv2-blocks 3.3), so the tokens above are that path's
    assert loaded.model.decode_path.kind == "fused"
    assert loaded.model.fused_decode_reason is None
