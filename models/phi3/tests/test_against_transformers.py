""" "Phi3ForCausalLM" against transformers on tiny random checkpoints (tttv2.testing.model_kit):
fp32 logits max-abs error < 1e-4 and 64 identical greedy tokens through the engine; bf16
PCC >= 0.99 for every layer and teacher-forced top-1 agreement >= 99% (trained checkpoint)."""

from __future__ import annotations

import pytest
from conftest import LONGROPE, ORIGINAL, PARTIAL
from tttv2_model_phi3 import load

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


@pytest.mark.parametrize("rope", [LONGROPE, PARTIAL], ids=["longrope", "partial-rotary"])
@pytest.mark.parametrize(
    "prompt_len", [ORIGINAL, ORIGINAL + 40], ids=["short-factor", "long-factor"]
)
def test_fp32_longrope_either_side_of_original_max_position(build, rope, prompt_len):
    """Up to original_max_position_embeddings tokens the short factors rotate, past it the
    long ones (and transformers' attention factor): logits within 1e-4 in both regimes."""
    check_fp32_logits(load, build(rope), prompt_len=prompt_len)


def test_fp32_su_is_read_as_longrope_as_phi3config_does(build):
    """Early Phi-3 files name the rule "su" (Phi3Config rewrites it to "longrope")."""
    scaling = {k: v for k, v in LONGROPE["rope_scaling"].items() if k != "rope_type"}
    check_fp32_logits(
        load, build(LONGROPE | {"rope_scaling": {"type": "su", **scaling}}), prompt_len=ORIGINAL + 8
    )
