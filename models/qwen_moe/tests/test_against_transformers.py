"""Qwen2-MoE and Qwen3-MoE against transformers on tiny random checkpoints
(tttv2.testing.model_kit): fp32 layers and logits max-abs error < 1e-4 and 64 identical
greedy tokens through the engine; bf16 PCC >= 0.99 for every layer and teacher-forced top-1
agreement >= 99% (trained checkpoints). The variants mix dense and sparse layers
(``mlp_only_layers``, ``decoder_sparse_step``), renormalise or not (``norm_topk_prob``),
and window some layers (Qwen2-MoE: by ``layer_types``) or all (Qwen3-MoE)."""

from __future__ import annotations

from loads import load_for

from tttv2.core.specs import MoESpec
from tttv2.testing.model_kit import check_bf16_layers, check_bf16_parity, check_fp32_parity


def test_fp32_logits_and_64_greedy_tokens_match_transformers(variant):
    spec = load_for(variant)(variant.path).spec
    kinds = {isinstance(layer.ffn, MoESpec) for layer in spec.layers}
    assert kinds == {True, False}, "every variant mixes dense and sparse layers"
    check_fp32_parity(load_for(variant), variant)


def test_bf16_trained_model_every_layer_pcc_and_teacher_forced_top1(windowed, trained):
    check_bf16_parity(load_for(windowed), *trained)


def test_bf16_random_weights_every_layer_pcc(variant):
    check_bf16_layers(load_for(variant), variant)
