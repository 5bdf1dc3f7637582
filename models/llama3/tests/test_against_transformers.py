"""Our Llama against transformers on the same tiny random checkpoints (tied and untied
heads, llama3 RoPE scaling, sharded with GQA and biases), with tttv2.testing.model_kit's
bar: fp32 logits max-abs error < 1e-4 and 64 identical greedy tokens through the engine;
bf16 PCC >= 0.99 for every layer and teacher-forced top-1 agreement >= 99% (on a briefly
trained checkpoint, see the ``trained`` fixture)."""

from __future__ import annotations

import pytest
from tttv2_llama3 import load

from tttv2.testing.model_kit import (
    check_bf16_layers,
    check_bf16_parity,
    check_fp32_logits,
    check_fp32_parity,
)


def test_fp32_logits_and_64_greedy_tokens_match_transformers(variant):
    check_fp32_parity(load, variant)


def test_bf16_trained_model_every_layer_pcc_and_teacher_forced_top1(trained):
    check_bf16_parity(load, *trained)


def test_bf16_random_weights_every_layer_pcc(variant):
    check_bf16_layers(load, variant)


@pytest.mark.parametrize(
    "scaling",
    [
        {"rope_type": "linear", "factor": 4.0},
        {"rope_type": "dynamic", "factor": 2.0},
        {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16},
    ],
    ids=lambda s: s["rope_type"],
)
def test_fp32_other_rope_scalings_match_transformers(build, scaling):
    """Prompt longer than max_position_embeddings, so dynamic NTK scaling is active."""
    check_fp32_logits(load, build({"max_position_embeddings": 48, "rope_scaling": scaling}))
