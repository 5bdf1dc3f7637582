"""MoE at real router configurations against Hugging Face: Mixtral-8x7B (8 experts, top-2,
hidden 4096, expert intermediate reduced from 14336 to 512) and Qwen1.5-MoE-A2.7B (60
experts, top-4 without renormalisation, sigmoid-gated shared expert; expert sizes reduced)."""

from __future__ import annotations

import torch
from transformers import MixtralConfig, Qwen2MoeConfig
from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock
from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeSparseMoeBlock

from tttv2.blocks import MoE
from tttv2.core import FeedForwardSpec, MoESpec


def _copy_experts(ours: MoE, hf: torch.nn.Module) -> None:
    with torch.no_grad():
        hf.gate.weight.copy_(ours.gate.weight)
        for e, expert in enumerate(ours.experts):
            hf.experts.gate_up_proj[e].copy_(
                torch.cat((expert.gate_proj.weight, expert.up_proj.weight))
            )
            hf.experts.down_proj[e].copy_(expert.down_proj.weight)


def _rows_per_expert(moe: MoE) -> list[int]:
    rows = [0] * len(moe.experts)
    for e, expert in enumerate(moe.experts):
        expert.register_forward_hook(
            lambda _m, a, _o, e=e: rows.__setitem__(e, rows[e] + a[0].shape[0])
        )
    return rows


def test_mixtral_8x7b_routing_equals_hugging_face() -> None:
    torch.manual_seed(0)
    spec = MoESpec(
        hidden_dim=4096,
        num_experts=8,
        top_k=2,
        expert=FeedForwardSpec(hidden_dim=4096, intermediate_dim=512),
    )
    ours = MoE(spec)
    hf = MixtralSparseMoeBlock(
        MixtralConfig(
            hidden_size=4096,
            intermediate_size=512,
            num_local_experts=8,
            num_experts_per_tok=2,
            num_attention_heads=32,
        )
    ).eval()
    _copy_experts(ours, hf)
    rows = _rows_per_expert(ours)
    x = torch.randn(6, 4096)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(x[None])[0], rtol=1e-5, atol=1e-5)
    assert sum(rows) == 6 * 2


def test_qwen15_moe_with_shared_expert_equals_hugging_face() -> None:
    torch.manual_seed(0)
    spec = MoESpec(
        hidden_dim=2048,
        num_experts=60,
        top_k=4,
        renormalize=False,
        expert=FeedForwardSpec(hidden_dim=2048, intermediate_dim=64),
        shared_expert=FeedForwardSpec(hidden_dim=2048, intermediate_dim=256),
        shared_expert_gate=True,
    )
    ours = MoE(spec)
    config = Qwen2MoeConfig(
        hidden_size=2048,
        num_experts=60,
        num_experts_per_tok=4,
        norm_topk_prob=False,
        moe_intermediate_size=64,
        shared_expert_intermediate_size=256,
        num_attention_heads=16,
    )
    hf = Qwen2MoeSparseMoeBlock(config).eval()
    _copy_experts(ours, hf)
    with torch.no_grad():
        hf.shared_expert_gate.weight.copy_(ours.shared_expert_gate.weight)
        for name in ("gate_proj", "up_proj", "down_proj"):
            getattr(hf.shared_expert, name).weight.copy_(getattr(ours.shared_expert, name).weight)
    rows = _rows_per_expert(ours)
    x = torch.randn(5, 2048)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(x[None])[0], rtol=1e-5, atol=1e-5)
    assert sum(rows) == 5 * 4 and sum(r > 0 for r in rows) <= 20  # at most 20 of 60 experts ran
