"""Fused decode of mixture-of-experts layers (tttv2-hw's ``decode_layers`` op with
``DecodeLayer.moe``) against the same stack run op by op: the same logits for Mixtral-like
(top-2, no shared expert) and Qwen-MoE-like (gated shared expert, dense and sparse layers
mixed) stacks, the routing of the block's own router (ties included), the op-by-op path
where the kernel does not take MoE layers, and no stale expert weights after a change."""

from __future__ import annotations

import pytest
import torch
from test_fused_decode import (
    PROMPTS,
    _generate,
    check_fused_decode_equals_op_by_op,
)

from tttv2.blocks import TransformerStack
from tttv2.blocks.weights import fuse_projections
from tttv2.core import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    FeedForwardSpec,
    LMHeadSpec,
    ModelSpec,
    MoESpec,
    NormSpec,
    RopeSpec,
)
from tttv2.hw.kernels.native.decode_layer import native_decode_layer_available

HIDDEN, VOCAB, EXPERTS = 64, 97, 8

with torch.inference_mode():
    if not native_decode_layer_available():
        pytest.skip("the native decode layer kernel cannot be built here", allow_module_level=True)


def _spec(
    *, shared: bool = False, gate: bool = False, dense_first: bool = False, activation: str = "silu",
    top_k: int = 2, round_weights: bool = False, window: int | None = None,
) -> ModelSpec:  # fmt: skip
    norm = NormSpec(dim=HIDDEN, eps=1e-5)
    attention = AttentionSpec(
        hidden_dim=HIDDEN, num_heads=4, num_kv_heads=2, head_dim=16, max_seq_len=128,
        rope=RopeSpec(head_dim=16, theta=500.0), sliding_window=window,
    )  # fmt: skip
    expert = FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=32, activation=activation)
    moe = MoESpec(
        hidden_dim=HIDDEN, num_experts=EXPERTS, top_k=top_k, expert=expert,
        shared_expert=FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=48, activation=activation)
        if shared else None,
        shared_expert_gate=gate, round_routing_weights=round_weights,
    )  # fmt: skip
    sparse = DecoderLayerSpec(attention=attention, ffn=moe, attn_norm=norm, ffn_norm=norm)
    dense = DecoderLayerSpec(
        attention=attention,
        ffn=FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=96, activation=activation),
        attn_norm=norm,
        ffn_norm=norm,
    )
    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN),
        layers=(dense if dense_first else sparse, sparse, sparse),
        final_norm=norm,
        lm_head=LMHeadSpec(hidden_dim=HIDDEN, vocab_size=VOCAB, tied=False),
        max_seq_len=128,
    )


def _stack(spec: ModelSpec, dtype: torch.dtype, fused: bool, seed: int = 0) -> TransformerStack:
    """A random stack, q/k/v and every gate/up (experts' and shared expert's) fused as loading does."""
    torch.manual_seed(seed)
    stack = TransformerStack(spec)
    with torch.no_grad():
        for p in stack.parameters():
            p.normal_(0.0, 0.3)
    fuse_projections(stack)
    stack = stack.to(dtype).eval()
    stack.fuse_decode_layers(fused)
    return stack


VARIANTS = {
    "mixtral_like": {},
    "qwen2_moe_like": {"shared": True, "gate": True, "dense_first": True, "top_k": 4, "round_weights": True},
    "ungated_shared_geglu": {"shared": True, "activation": "gelu_tanh"},
    "windowed_top1": {"top_k": 1, "window": 5},
}  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_fused_moe_decode_equals_op_by_op(variant: str, dtype: torch.dtype) -> None:
    spec = _spec(**VARIANTS[variant])
    # every pass fused, the MoE layers included: the same kernels, roundings and router
    check_fused_decode_equals_op_by_op(_stack(spec, dtype, True), _stack(spec, dtype, False), dtype)


def test_tied_router_logits_choose_the_experts_torch_topk_chooses() -> None:
    """All router logits equal: which experts win is torch.topk's tie order (not the lowest
    ids), and the fused path must choose exactly those, as the op-by-op block does."""
    spec = _spec(top_k=3)
    stacks = [_stack(spec, torch.float32, fused) for fused in (True, False)]
    for stack in stacks:
        with torch.no_grad():
            for layer in stack.layers:
                layer.ffn.gate.weight.zero_()
                for e, expert in enumerate(layer.ffn.experts):  # experts tell apart clearly
                    expert.down_proj.weight.mul_(1.0 + e)
    ties = torch.topk(torch.full((1, EXPERTS), 1.0 / EXPERTS), 3).indices[0].tolist()
    assert sorted(ties) != [0, 1, 2]  # otherwise "lowest ids first" would pass unnoticed
    fused, reasons = _generate(stacks[0], PROMPTS, 4)
    eager, _ = _generate(stacks[1], PROMPTS, 4)
    assert reasons == [None] * 4
    for a, b in zip(fused, eager, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_a_kernel_that_does_not_take_moe_layers_leaves_them_op_by_op(monkeypatch) -> None:
    from tttv2.blocks.patterns import transformer_stack
    from tttv2.hw.kernels.native.decode_layers import NATIVE_DECODE_LAYERS

    class DenseOnly:  # a decode_layers kernel written before MoE layers existed (no takes_moe)
        def unavailable(self) -> str | None:
            return None

        def __call__(self, layers, k_pools, v_pools):
            return NATIVE_DECODE_LAYERS(layers, k_pools, v_pools)

    real = transformer_stack.get_kernel
    monkeypatch.setattr(
        transformer_stack,
        "get_kernel",
        lambda op, device: DenseOnly() if op == "decode_layers" else real(op, device),
    )
    spec = _spec()
    stack = _stack(spec, torch.float32, True)  # fuse_decode_layers(True) chose the path then
    got, reasons = _generate(stack, PROMPTS, 2)
    eager, _ = _generate(_stack(spec, torch.float32, False), PROMPTS, 2)
    assert all(r is not None and "does not take" in r for r in reasons), reasons
    for a, b in zip(got, eager, strict=True):
        assert torch.equal(a, b)


def test_replaced_expert_weights_are_used_not_the_bound_ones() -> None:
    spec = _spec(shared=True, gate=True)
    stack, reference = _stack(spec, torch.float32, True), _stack(spec, torch.float32, False)
    _generate(stack, PROMPTS, 1)  # binds the layers
    # a new Parameter for every expert of one layer, the shared expert's changed in place
    for s in (stack, reference):
        with torch.no_grad():
            for expert in s.layers[1].ffn.experts:
                expert.down_proj.weight = torch.nn.Parameter(expert.down_proj.weight * -1.5)
            s.layers[2].ffn.shared_expert.down_proj.weight.mul_(0.5)
    fused, reasons = _generate(stack, PROMPTS, 3)
    eager, _ = _generate(reference, PROMPTS, 3)
    stale, _ = _generate(_stack(spec, torch.float32, False), PROMPTS, 3)
    assert reasons == [None] * 3
    assert not torch.allclose(stale[0], eager[0], rtol=1e-3, atol=1e-3)  # the change matters
    for a, b in zip(fused, eager, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_hooks_on_an_expert_keep_the_pass_op_by_op() -> None:
    stack = _stack(_spec(), torch.float32, True)
    seen: list[int] = []
    expert = stack.layers[0].ffn.experts[3]
    handle = expert.register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
    _, reasons = _generate(stack, PROMPTS, 2)
    assert all("hooks" in r for r in reasons)
    handle.remove()
    _, reasons = _generate(stack, PROMPTS, 1)
    assert reasons == [None]
