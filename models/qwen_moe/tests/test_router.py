"""The router chooses transformers' experts with transformers' weights, in bf16 where
near-tied logits make the choice fragile: softmax in float32 over the bf16 logits, top-k of
the probabilities, renormalised only with ``norm_topk_prob``.

The router rows are one random row plus noise far below a bf16 step, so many tokens' logits
tie exactly in bf16 and many differ by one bf16 step: a softmax in bf16 would choose other
experts for some tokens.

transformers' Qwen routers also round the routing weights to the logits' dtype (bf16)
before scaling the experts' outputs (Mixtral's keep them float32); this project's spec asks
for the same (``MoESpec.round_routing_weights``), so the weights are transformers' exactly.
The block output still differs by the experts' bf16 matmuls' accumulation order (checked
below to stay within one bf16 step of the output's scale)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from loads import load_for

from tttv2.blocks.building_blocks.moe import route
from tttv2.core.specs import MoESpec


def near_tied_router(weight: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    row = torch.randn(weight.shape[1], generator=g)
    return (row + 1e-3 * torch.randn(weight.shape, generator=g)).to(weight.dtype)


@pytest.fixture(scope="module", params=["renormalised", "not-renormalised"])
def blocks(request, windowed):
    """transformers' sparse MoE block and ours for the first sparse layer, in bf16, with the
    same near-tied router, and ``norm_topk_prob`` on and off."""
    ours_model = load_for(windowed)(windowed.path, dtype=torch.bfloat16).model
    i = next(i for i, layer in enumerate(ours_model.layers) if isinstance(layer.ffn.spec, MoESpec))
    ours = ours_model.layers[i].ffn
    theirs = windowed.load_model(dtype=torch.bfloat16).model.layers[i].mlp
    router = near_tied_router(ours.gate.weight, seed=0)
    renormalise = request.param == "renormalised"
    with torch.no_grad():
        ours.gate.weight.copy_(router)
        theirs.gate.weight.copy_(router)
    ours.spec = dataclasses.replace(ours.spec, renormalize=renormalise)
    theirs.gate.norm_topk_prob = renormalise
    return ours, theirs


@torch.inference_mode()
def test_near_tied_bf16_logits_choose_transformers_experts_and_weights(blocks):
    ours, theirs = blocks
    x = torch.randn(
        512, ours.spec.hidden_dim, generator=torch.Generator().manual_seed(1)
    ).bfloat16()
    logits, their_weights, their_experts = theirs.gate(x)
    our_logits = ours.gate(x)
    assert torch.equal(our_logits, logits)
    top = logits.float().sort(dim=-1, descending=True).values
    k = ours.spec.top_k
    assert (top[:, k - 1] == top[:, k]).sum() > 20, "too few exact ties at the top-k boundary"
    step = top[:, k - 1] - top[:, k]
    assert ((step > 0) & (step <= top[:, k - 1].abs() * 2**-7)).sum() > 20, "too few one-step gaps"

    assert ours.spec.round_routing_weights
    weights, experts = route(
        our_logits, k, ours.spec.renormalize, round_weights=ours.spec.round_routing_weights
    )
    assert torch.equal(experts, their_experts)
    assert torch.equal(weights, their_weights.float())  # rounded to bf16, handed on as fp32
    if ours.spec.renormalize:
        assert torch.allclose(weights.sum(-1), torch.ones(len(x)), atol=2**-7)
    else:
        assert (weights.sum(-1) < 0.999).all()


@torch.inference_mode()
def test_near_tied_bf16_block_output_is_transformers_within_the_weights_rounding(blocks):
    ours, theirs = blocks
    x = torch.randn(64, ours.spec.hidden_dim, generator=torch.Generator().manual_seed(2)).bfloat16()
    expected = theirs(x[None]).float()[0]
    got = ours(x).float()
    assert (got - expected).abs().max() <= 2**-7 * expected.abs().max()
