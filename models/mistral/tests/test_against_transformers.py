"""Mistral against transformers on tiny random checkpoints (tttv2.testing.model_kit):
fp32 logits max-abs error < 1e-4 and 64 identical greedy tokens through the engine; bf16
PCC >= 0.99 for every layer and teacher-forced top-1 agreement >= 99% (trained checkpoint).
Windows of 7 and 12 tokens are shorter than every prompt, so they change the output."""

from __future__ import annotations

import pytest
import torch
from tttv2_model_mistral import load

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
    ("window", "honoured"),
    [(7, True), (None, False), (256, False), (1000, False)],
    ids=["window-7-honoured", "null-is-full", "window-of-the-context", "window-past-the-context"],
)
def test_sliding_window_changes_our_output_exactly_when_it_changes_transformers(
    build, window, honoured
):
    """The same weights with ``sliding_window`` absent and set: ours matches transformers
    in both, and the window changes our spec iff it changes transformers' logits."""
    plain, keyed = build({"sliding_window": None}), build({"sliding_window": window})
    check_fp32_logits(load, keyed, prompt_len=48)
    ids = prompt(plain.vocab_size, n=48, seed=2)
    theirs_changed = not torch.equal(
        reference_outputs(plain, ids, greedy_steps=0).logits,
        reference_outputs(keyed, ids, greedy_steps=0).logits,
    )
    ours = load(keyed.path).spec
    assert theirs_changed == honoured
    assert (ours != load(plain.path).spec) == honoured
    assert {layer.attention.sliding_window for layer in ours.layers} == {
        window if honoured else None
    }
