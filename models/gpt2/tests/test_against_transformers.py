""" "GPT2LMHeadModel" against transformers on tiny random checkpoints (tttv2.testing.model_kit):
fp32 logits max-abs error < 1e-4 and 64 identical greedy tokens through the engine; bf16
PCC >= 0.99 for every layer and teacher-forced top-1 agreement >= 99% (trained checkpoint)."""

from __future__ import annotations

from tttv2_model_gpt2 import load

from tttv2.testing.model_kit import check_bf16_layers, check_bf16_parity, check_fp32_parity


def test_fp32_logits_and_64_greedy_tokens_match_transformers(variant):
    check_fp32_parity(load, variant)


def test_bf16_trained_model_every_layer_pcc_and_teacher_forced_top1(trained):
    check_bf16_parity(load, *trained)


def test_bf16_random_weights_every_layer_pcc(variant):
    check_bf16_layers(load, variant)
