"""bf16 MoE layers equal transformers' sparse MoE blocks bit for bit, routing weights
included: Mixtral keeps the top-k weights float32, Qwen2-MoE / Qwen3-MoE round them to the
logits' dtype (``router_top_value.to(router_logits.dtype)``) before scaling the experts'
outputs. ``MoESpec.round_routing_weights`` says which; the other setting differs from
transformers by a bf16 step on many elements (checked too, so the case can tell them apart).

Host-independent: the experts' inputs and weights are small dyadic numbers, so every matmul
is exact whatever the accumulation order (our separate gate/up projections against
transformers' fused ``gate_up_proj``, AVX2 or AVX-512 kernels); the router is the same
``F.linear`` of the same shapes on both sides. What is left to differ is the rounding of the
routing weights and of the weighted expert outputs."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import MixtralConfig, Qwen2MoeConfig, Qwen3MoeConfig
from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock
from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeSparseMoeBlock
from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

from tttv2.blocks import MoE, route
from tttv2.core import FeedForwardSpec, MoESpec

HIDDEN, INTER, SHARED_INTER, EXPERTS, TOP_K = 16, 8, 8, 8, 2


def _dyadic(shape: tuple[int, ...], scale: float, g: torch.Generator) -> torch.Tensor:
    """Integers in [-2, 2] times ``scale`` (a power of two): exact in bf16, and sums of a
    few dozen of their products stay exact in float32."""
    return torch.randint(-2, 3, shape, generator=g).float() * scale


def _blocks(arch: str, norm_topk_prob: bool) -> tuple[MoE, torch.nn.Module]:
    """Our MoE (``round_routing_weights`` as transformers does for ``arch``) and
    transformers' sparse MoE block with the same bf16 weights."""
    shared = arch == "qwen2_moe"
    spec = MoESpec(
        hidden_dim=HIDDEN,
        num_experts=EXPERTS,
        top_k=TOP_K,
        expert=FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=INTER),
        renormalize=norm_topk_prob,
        shared_expert=FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=SHARED_INTER)
        if shared
        else None,
        shared_expert_gate=shared,
        round_routing_weights=arch != "mixtral",
    )
    common = {"hidden_size": HIDDEN, "num_experts_per_tok": TOP_K, "num_attention_heads": 4}
    hf: torch.nn.Module
    if arch == "mixtral":
        hf = MixtralSparseMoeBlock(
            MixtralConfig(intermediate_size=INTER, num_local_experts=EXPERTS, **common)
        )
    elif arch == "qwen2_moe":
        hf = Qwen2MoeSparseMoeBlock(
            Qwen2MoeConfig(
                moe_intermediate_size=INTER,
                shared_expert_intermediate_size=SHARED_INTER,
                num_experts=EXPERTS,
                norm_topk_prob=norm_topk_prob,
                num_key_value_heads=4,
                **common,
            )
        )
    else:
        hf = Qwen3MoeSparseMoeBlock(
            Qwen3MoeConfig(
                moe_intermediate_size=INTER,
                num_experts=EXPERTS,
                norm_topk_prob=norm_topk_prob,
                num_key_value_heads=4,
                **common,
            )
        )
    ours = MoE(spec)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        router = torch.randn(EXPERTS, HIDDEN, generator=g)
        ours.gate.weight.copy_(router)
        hf.gate.weight.copy_(router)
        for e, expert in enumerate(ours.experts):
            gate, up = _dyadic((INTER, HIDDEN), 0.25, g), _dyadic((INTER, HIDDEN), 0.25, g)
            down = _dyadic((HIDDEN, INTER), 0.125, g)
            expert.gate_proj.weight.copy_(gate)
            expert.up_proj.weight.copy_(up)
            expert.down_proj.weight.copy_(down)
            hf.experts.gate_up_proj[e].copy_(torch.cat((gate, up)))
            hf.experts.down_proj[e].copy_(down)
        if ours.shared_expert is not None:
            for name, shape, scale in (
                ("gate_proj", (SHARED_INTER, HIDDEN), 0.25),
                ("up_proj", (SHARED_INTER, HIDDEN), 0.25),
                ("down_proj", (HIDDEN, SHARED_INTER), 0.125),
            ):
                w = _dyadic(shape, scale, g)
                getattr(ours.shared_expert, name).weight.copy_(w)
                getattr(hf.shared_expert, name).weight.copy_(w)
            shared_gate = _dyadic((1, HIDDEN), 0.125, g)
            ours.shared_expert_gate.weight.copy_(shared_gate)
            hf.shared_expert_gate.weight.copy_(shared_gate)
    return ours.bfloat16(), hf.eval().bfloat16()


CASES = [("mixtral", True), ("qwen2_moe", True), ("qwen2_moe", False), ("qwen3_moe", True),
         ("qwen3_moe", False)]  # fmt: skip


@pytest.mark.parametrize(("arch", "norm_topk_prob"), CASES)
def test_bf16_block_equals_transformers_bit_for_bit(arch: str, norm_topk_prob: bool) -> None:
    ours, hf = _blocks(arch, norm_topk_prob)
    x = _dyadic((64, HIDDEN), 0.25, torch.Generator().manual_seed(1)).bfloat16()
    theirs = hf(x[None])[0]
    # grad recording on: the eager expert loop, the op-by-op path transformers runs too
    assert torch.equal(ours(x), theirs)
    other = dataclasses.replace(
        ours.spec, round_routing_weights=not ours.spec.round_routing_weights
    )
    ours.spec = other
    differs = (ours(x) != theirs).sum().item()
    assert differs > 0, "the case cannot tell rounded from float32 routing weights apart"


@pytest.mark.parametrize(("arch", "norm_topk_prob"), CASES)
@torch.inference_mode()
def test_bf16_routing_weights_are_transformers(arch: str, norm_topk_prob: bool) -> None:
    ours, hf = _blocks(arch, norm_topk_prob)
    x = torch.randn(256, HIDDEN, generator=torch.Generator().manual_seed(2)).bfloat16()
    _, their_weights, their_experts = hf.gate(x)
    spec = ours.spec
    weights, experts = route(ours.gate(x), spec.top_k, spec.renormalize, spec.round_routing_weights)
    assert torch.equal(experts, their_experts)
    assert their_weights.dtype == (torch.bfloat16 if spec.round_routing_weights else torch.float32)
    assert weights.dtype == torch.float32  # the rounded values, handed on as float32
    assert torch.equal(weights, their_weights.float())


def test_round_routing_weights_defaults_off_and_is_validated() -> None:
    expert = FeedForwardSpec(hidden_dim=4, intermediate_dim=4)
    spec = MoESpec(hidden_dim=4, num_experts=2, top_k=1, expert=expert)
    assert spec.round_routing_weights is False
    assert MoESpec.from_dict(spec.to_dict()) == spec
    rounded = dataclasses.replace(spec, round_routing_weights=True)
    assert MoESpec.from_dict(rounded.to_dict()) == rounded
    with pytest.raises(Exception, match="round_routing_weights"):
        dataclasses.replace(spec, round_routing_weights=1)


@pytest.mark.parametrize("rounded", [True, False])
def test_sharded_moe_rounds_routing_weights_as_the_spec_says(rounded: bool) -> None:
    """The tensor-parallel block (one rank holding every expert) routes as MoE does."""
    from tttv2.blocks.parallel.moe import ShardedMoE
    from tttv2.blocks.parallel.plan import MoEShard
    from tttv2.hw.mesh import DeviceMesh

    ours, hf = _blocks("qwen2_moe", True)
    ours.spec = dataclasses.replace(ours.spec, round_routing_weights=rounded)
    sharded = ShardedMoE(MoEShard(ours.spec, 1, 0), DeviceMesh.single()).bfloat16()
    sharded.load_state_dict(ours.state_dict())
    x = _dyadic((64, HIDDEN), 0.25, torch.Generator().manual_seed(1)).bfloat16()
    assert torch.equal(sharded(x), ours(x))
    assert torch.equal(sharded(x), hf(x[None])[0]) == rounded
