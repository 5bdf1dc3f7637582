"""The decode roofline of a mixture-of-experts model counts the experts a step reads: the
router, the shared expert and ``top_k`` routed experts per token, not every expert."""

from __future__ import annotations

import re

import pytest
import torch

from tttv2.blocks import TransformerStack
from tttv2.cli.roofline import decode_roofline, weight_bytes_read_per_step
from tttv2.core import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    FeedForwardSpec,
    LMHeadSpec,
    ModelSpec,
    MoESpec,
    NormSpec,
)

HIDDEN, VOCAB, EXPERTS, TOP_K = 32, 64, 8, 2


def moe_model() -> tuple[torch.nn.Module, ModelSpec]:
    """Layer 0 dense, layer 1 MoE (8 experts, top-2, gated shared expert), untied head."""
    norm = NormSpec(dim=HIDDEN)
    attention = AttentionSpec(hidden_dim=HIDDEN, num_heads=4, num_kv_heads=2, max_seq_len=64)
    moe = MoESpec(
        hidden_dim=HIDDEN,
        num_experts=EXPERTS,
        top_k=TOP_K,
        expert=FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=24),
        shared_expert=FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=40),
        shared_expert_gate=True,
    )
    dense = FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=48)
    layers = tuple(
        DecoderLayerSpec(attention=attention, ffn=ffn, attn_norm=norm, ffn_norm=norm)
        for ffn in (dense, moe)
    )
    spec = ModelSpec(
        embedding=EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN),
        layers=layers,
        final_norm=norm,
        lm_head=LMHeadSpec(hidden_dim=HIDDEN, vocab_size=VOCAB),
        max_seq_len=64,
    )
    return TransformerStack(spec), spec


def bytes_by_name(model: torch.nn.Module) -> tuple[int, dict[int, int]]:
    """(bytes of all parameters less the embedding table, bytes of each routed expert)."""
    total, experts = 0, {}
    for name, p in model.named_parameters():
        n = p.numel() * p.element_size()
        if "embed" in name:
            continue
        total += n
        found = re.search(r"\.experts\.(\d+)\.", name)
        if found:
            experts[int(found[1])] = experts.get(int(found[1]), 0) + n
    return total, experts


def test_moe_roofline_reads_top_k_experts_at_batch_1() -> None:
    model, spec = moe_model()
    total, experts = bytes_by_name(model)
    assert len(experts) == EXPERTS and len(set(experts.values())) == 1
    one_expert = experts[0]
    expected = total - (EXPERTS - TOP_K) * one_expert  # router, shared expert, dense layer all stay
    assert weight_bytes_read_per_step(model, spec) == expected
    assert weight_bytes_read_per_step(model, spec) < total  # not every expert
    roof = decode_roofline(model, spec, batch=1, prompt_len=4, gen_len=2, bandwidth=1e9)
    assert roof.weight_bytes == expected


def test_moe_roofline_reads_more_experts_for_a_batch() -> None:
    model, spec = moe_model()
    total, experts = bytes_by_name(model)
    one_expert = experts[0]
    # 4 tokens routed uniformly touch 8 * (1 - (6/8) ** 4) distinct experts on average
    distinct = EXPERTS * (1 - (1 - TOP_K / EXPERTS) ** 4)
    assert weight_bytes_read_per_step(model, spec, batch=4) == pytest.approx(
        total - (EXPERTS - distinct) * one_expert, abs=1
    )
    assert weight_bytes_read_per_step(model, spec, batch=512) == total  # every expert is read
