"""The router chooses transformers' experts with transformers' weights, in bf16 where
near-tied logits make the choice fragile: softmax in float32 over the bf16 logits, top-k of
the probabilities, then renormalised to sum to one (Mixtral always renormalises).

The router rows are one random row plus noise far below a bf16 step, so many tokens' logits
tie exactly in bf16 and many differ by one bf16 step: a softmax in bf16 would choose other
experts for some tokens (17 of these 512)."""

from __future__ import annotations

import pytest
import torch
from tttv2_model_mixtral import load

from tttv2.blocks.building_blocks.moe import route


def near_tied_router(weight: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    row = torch.randn(weight.shape[1], generator=g)
    return (row + 1e-3 * torch.randn(weight.shape, generator=g)).to(weight.dtype)


@pytest.fixture(scope="module")
def blocks(windowed):
    """transformers' sparse MoE block and ours for layer 0, in bf16, with the same
    near-tied router."""
    ours = load(windowed.path, dtype=torch.bfloat16).model.layers[0].ffn
    theirs = windowed.load_model(dtype=torch.bfloat16).model.layers[0].mlp
    router = near_tied_router(ours.gate.weight, seed=0)
    with torch.no_grad():
        ours.gate.weight.copy_(router)
        theirs.gate.weight.copy_(router)
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
    one_step = (step > 0) & (step <= top[:, k - 1].abs() * 2**-7)
    assert one_step.sum() > 20, "too few one-bf16-step gaps at the top-k boundary"

    weights, experts = route(our_logits, k, ours.spec.renormalize)
    assert torch.equal(experts, their_experts)
    assert weights.dtype == their_weights.dtype == torch.float32
    assert torch.equal(weights, their_weights)
    assert torch.allclose(weights.sum(-1), torch.ones(len(x)))


@torch.inference_mode()
def test_near_tied_bf16_block_output_is_transformers(blocks):
    ours, theirs = blocks
    x = torch.randn(64, ours.spec.hidden_dim, generator=torch.Generator().manual_seed(2)).bfloat16()
    expected = theirs(x[None]).float()[0]
    got = ours(x).float()
    assert (got - expected).abs().max() <= 2**-7 * expected.abs().max()
