"""MoE through tttv2-hw's ``routed_experts`` kernel: it is handed only the chosen experts'
weights, its results equal the block's expert-by-expert path bit for bit in half precision
(the roundings are the same), and experts that are hooked keep running as modules."""

from __future__ import annotations

import copy
import importlib

import pytest
import torch

from tttv2.blocks import MoE, route
from tttv2.core import FeedForwardSpec, MoESpec
from tttv2.hw import get_kernel

moe_module = importlib.import_module("tttv2.blocks.building_blocks.moe.moe")


def moe(dtype: torch.dtype, fused: bool = False) -> MoE:
    torch.manual_seed(0)
    spec = MoESpec(
        hidden_dim=64,
        num_experts=16,
        top_k=4,
        expert=FeedForwardSpec(hidden_dim=64, intermediate_dim=40),
    )
    block = MoE(spec).to(dtype).eval()
    if fused:
        for expert in block.experts:
            expert.fuse_gate_up()
    return block


def module_path(block: MoE) -> MoE:
    """A copy whose experts carry a (no-op) forward hook: each runs as a module."""
    twin = copy.deepcopy(block)
    for expert in twin.experts:
        expert.register_forward_hook(lambda *_: None)
    return twin


@pytest.fixture
def kernel_calls(monkeypatch):
    """Every routed_experts call of MoE blocks built after it: (counts, expert weights)."""
    calls = []

    def spy_get_kernel(op, device):
        real = get_kernel(op, device)

        def spy(x, rows, weights, counts, experts, activation):
            calls.append((list(counts), experts))
            return real(x, rows, weights, counts, experts, activation)

        return spy

    monkeypatch.setattr(moe_module, "get_kernel", spy_get_kernel)
    return calls


@pytest.mark.parametrize("tokens", [1, 8])
def test_kernel_is_handed_only_the_chosen_experts(kernel_calls, tokens):
    block = moe(torch.bfloat16)
    x = torch.randn(tokens, 64).to(torch.bfloat16)
    with torch.inference_mode():
        block(x)
        _, chosen = route(block.gate(x), 4, True)
    ((counts, experts),) = kernel_calls
    wanted = sorted(set(chosen.flatten().tolist()))
    assert len(experts) == len(wanted) and sum(counts) == tokens * 4
    assert [e[0].data_ptr() for e in experts] == [
        block.experts[i].gate_proj.weight.data_ptr() for i in wanted
    ]
    assert [e[2].data_ptr() for e in experts] == [
        block.experts[i].down_proj.weight.data_ptr() for i in wanted
    ]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("tokens", [1, 3, 8, 64])
def test_kernel_path_equals_expert_by_expert_path(dtype, fused, tokens):
    block = moe(dtype, fused)
    x = torch.randn(tokens, 64).to(dtype)
    with torch.inference_mode():
        assert torch.equal(block(x), module_path(block)(x))


def test_float32_kernel_path_is_close_to_expert_by_expert_path():
    block = moe(torch.float32)
    x = torch.randn(5, 64)
    with torch.inference_mode():
        torch.testing.assert_close(block(x), module_path(block)(x), rtol=1e-5, atol=1e-6)


def test_hooked_experts_are_not_handed_to_the_kernel(kernel_calls):
    block = module_path(moe(torch.bfloat16))
    seen = []
    block.experts[0].register_forward_hook(lambda _m, args, _o: seen.append(args[0].shape[0]))
    with torch.inference_mode():
        block(torch.randn(32, 64).to(torch.bfloat16))
    assert kernel_calls == [] and sum(seen) > 0  # the hook saw its rows
