"""MoE: equal to Hugging Face's MixtralSparseMoeBlock and Qwen2MoeSparseMoeBlock (shared
expert with sigmoid gate) with the same weights, equal to the float64 reference for random
specs, and each expert runs only on the rows routed to it."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from transformers import MixtralConfig, Qwen2MoeConfig
from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock
from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeSparseMoeBlock

from tttv2.blocks import MoE, route
from tttv2.core import FeedForwardSpec, ModuleConfig, MoESpec, create_module
from tttv2.testing.reference.moe import reference_moe, reference_routing


def copy_into_hf_experts(ours: MoE, hf_block: torch.nn.Module) -> None:
    """Our per-expert Linear layers -> HF's fused [E, 2I, H] / [E, H, I] expert tensors."""
    with torch.no_grad():
        hf_block.gate.weight.copy_(ours.gate.weight)
        for e, expert in enumerate(ours.experts):
            hf_block.experts.gate_up_proj[e].copy_(
                torch.cat((expert.gate_proj.weight, expert.up_proj.weight))
            )
            hf_block.experts.down_proj[e].copy_(expert.down_proj.weight)


def test_equals_mixtral_sparse_moe_block() -> None:
    spec = MoESpec(
        hidden_dim=32,
        num_experts=8,
        top_k=2,
        expert=FeedForwardSpec(hidden_dim=32, intermediate_dim=48),
    )
    ours = MoE(spec)
    config = MixtralConfig(
        hidden_size=32,
        intermediate_size=48,
        num_local_experts=8,
        num_experts_per_tok=2,
        num_attention_heads=4,
    )
    hf = MixtralSparseMoeBlock(config).eval()
    copy_into_hf_experts(ours, hf)
    x = torch.randn(11, 32)
    torch.testing.assert_close(ours(x), hf(x[None])[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("norm_topk_prob", [True, False])
def test_equals_qwen2_moe_block_with_gated_shared_expert(norm_topk_prob: bool) -> None:
    spec = MoESpec(
        hidden_dim=24,
        num_experts=6,
        top_k=3,
        expert=FeedForwardSpec(hidden_dim=24, intermediate_dim=16),
        renormalize=norm_topk_prob,
        shared_expert=FeedForwardSpec(hidden_dim=24, intermediate_dim=40),
        shared_expert_gate=True,
    )
    ours = MoE(spec)
    config = Qwen2MoeConfig(
        hidden_size=24,
        moe_intermediate_size=16,
        shared_expert_intermediate_size=40,
        num_experts=6,
        num_experts_per_tok=3,
        norm_topk_prob=norm_topk_prob,
        num_attention_heads=4,
        num_key_value_heads=4,
    )
    hf = Qwen2MoeSparseMoeBlock(config).eval()
    copy_into_hf_experts(ours, hf)
    with torch.no_grad():
        hf.shared_expert_gate.weight.copy_(ours.shared_expert_gate.weight)
        for name in ("gate_proj", "up_proj", "down_proj"):
            getattr(hf.shared_expert, name).weight.copy_(getattr(ours.shared_expert, name).weight)
    x = torch.randn(9, 24)
    torch.testing.assert_close(ours(x), hf(x[None])[0], rtol=1e-6, atol=1e-6)


def test_parameter_names_follow_hugging_face_per_expert_layout() -> None:
    spec = MoESpec(
        hidden_dim=8,
        num_experts=3,
        top_k=1,
        expert=FeedForwardSpec(hidden_dim=8, intermediate_dim=4),
        shared_expert=FeedForwardSpec(hidden_dim=8, intermediate_dim=4),
        shared_expert_gate=True,
    )
    shapes = {k: tuple(v.shape) for k, v in MoE(spec).state_dict().items()}
    assert shapes["gate.weight"] == (3, 8)
    for e in range(3):
        assert shapes[f"experts.{e}.gate_proj.weight"] == (4, 8)
        assert shapes[f"experts.{e}.up_proj.weight"] == (4, 8)
        assert shapes[f"experts.{e}.down_proj.weight"] == (8, 4)
    assert shapes["shared_expert.gate_proj.weight"] == (4, 8)
    assert shapes["shared_expert_gate.weight"] == (1, 8)


def _count_expert_rows(moe: MoE) -> list[int]:
    rows = [0] * len(moe.experts)
    for e, expert in enumerate(moe.experts):
        expert.register_forward_hook(
            lambda _m, args, _out, e=e: rows.__setitem__(e, rows[e] + args[0].shape[0])
        )
    return rows


def test_experts_run_only_on_their_routed_rows() -> None:
    torch.manual_seed(0)
    spec = MoESpec(
        hidden_dim=16,
        num_experts=8,
        top_k=2,
        expert=FeedForwardSpec(hidden_dim=16, intermediate_dim=8),
    )
    moe = MoE(spec)
    with torch.no_grad():  # make expert 7 never win: a large negative router row
        moe.gate.weight[7] = -100 * moe.gate.weight[:7].abs().sum(0)
    rows = _count_expert_rows(moe)
    x = torch.randn(20, 16).abs()
    moe(x)
    _, experts = route(moe.gate(x), 2, True)
    expected = Counter(experts.flatten().tolist())
    assert rows == [expected.get(e, 0) for e in range(8)]
    assert sum(rows) == 20 * 2  # tokens x top_k rows in total, not tokens x experts
    assert rows[7] == 0  # an expert nobody chose is not run


@st.composite
def moe_specs(draw) -> MoESpec:
    hidden = draw(st.integers(2, 24))
    num_experts = draw(st.integers(1, 8))

    def ffn(gated: bool | None = None) -> FeedForwardSpec:
        return FeedForwardSpec(
            hidden_dim=hidden,
            intermediate_dim=draw(st.integers(1, 24)),
            activation=draw(st.sampled_from(["silu", "gelu_tanh"])),
            gated=draw(st.booleans()) if gated is None else gated,
        )

    shared = draw(st.none() | st.just(True))
    return MoESpec(
        hidden_dim=hidden,
        num_experts=num_experts,
        top_k=draw(st.integers(1, num_experts)),
        expert=ffn(gated=True),
        renormalize=draw(st.booleans()),
        shared_expert=ffn() if shared else None,
        shared_expert_gate=bool(shared) and draw(st.booleans()),
    )


@settings(max_examples=30, deadline=None)
@given(spec=moe_specs(), tokens=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_moe_matches_reference(spec: MoESpec, tokens: int, seed: int) -> None:
    torch.manual_seed(seed)
    moe = MoE(spec)
    x = torch.randn(tokens, spec.hidden_dim)
    weights = dict(moe.state_dict())
    _, _, probs = reference_routing(x, weights, spec)
    if spec.top_k < spec.num_experts:  # float32 routing may break a near-tie differently
        top = probs.topk(spec.top_k + 1, dim=-1).values
        assume(bool((top[:, -2] - top[:, -1] > 1e-5).all()))
    rows = _count_expert_rows(moe)
    out = moe(x)
    torch.testing.assert_close(out.double(), reference_moe(x, weights, spec), rtol=1e-5, atol=1e-5)
    assert sum(rows) == tokens * spec.top_k


def test_bad_input_is_reported() -> None:
    spec = MoESpec(
        hidden_dim=4,
        num_experts=2,
        top_k=1,
        expert=FeedForwardSpec(hidden_dim=4, intermediate_dim=4),
    )
    with pytest.raises(ValueError, match=r"\[T, hidden\]"):
        MoE(spec)(torch.randn(1, 2, 4))
    assert isinstance(create_module(ModuleConfig(spec)), MoE)
