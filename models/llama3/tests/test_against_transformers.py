"""Our Llama against transformers on the same tiny random checkpoints (tied and untied
heads, llama3 RoPE scaling, sharded with GQA and biases), with tttv2.testing.model_kit's
bar: fp32 logits max-abs error < 1e-4 and 64 identical greedy tokens through the engine;
bf16 PCC >= 0.99 for every layer and teacher-forced top-1 agreement >= 99% (on a briefly
trained checkpoint, see the ``trained`` fixture)."""

from __future__ import annotations

import pytest
import torch
from tttv2_llama3 import load

from tttv2.testing.hf import reference_outputs
from tttv2.testing.model_kit import (
    check_bf16_layers,
    check_bf16_parity,
    check_fp32_logits,
    check_fp32_parity,
    prompt,
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


@pytest.mark.parametrize(
    ("extra", "honoured"),
    [
        ({"partial_rotary_factor": 0.5}, False),  # Llama's default rotary embedding ignores it
        ({"rope_theta": 1000.0}, True),
        ({"sliding_window": 4, "layer_types": None, "use_sliding_window": True}, False),
    ],
    ids=["partial-rotary-ignored", "rope-theta-honoured", "sliding-window-ignored"],
)
def test_config_keys_change_our_output_exactly_when_they_change_transformers(
    build, extra, honoured
):
    """Same checkpoint with and without ``extra``: ours matches transformers in both, and
    the key changes ours iff it changes transformers' logits."""
    plain, keyed = build(), build(extra)
    check_fp32_logits(load, plain, prompt_len=32)
    check_fp32_logits(load, keyed, prompt_len=32)
    ids = prompt(plain.vocab_size, n=32, seed=2)
    theirs_changed = not torch.equal(
        reference_outputs(plain, ids, greedy_steps=0).logits,
        reference_outputs(keyed, ids, greedy_steps=0).logits,
    )
    ours_changed = load(plain.path).spec != load(keyed.path).spec
    assert theirs_changed == honoured and ours_changed == honoured
