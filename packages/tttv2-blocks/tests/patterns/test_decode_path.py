"""The decode path is decided when the stack is prepared, recorded in ``decode_path`` and
followed by ``forward`` (which decides nothing); fused decode goes through tttv2-hw's
``decode_layers`` kernel op, asked of the registry, with each layer described by
``DecoderLayer.decode_weights()``."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from test_fused_decode import PROMPTS, _generate, _spec, _stack

from tttv2.blocks import TransformerStack
from tttv2.core import MoESpec, NormSpec
from tttv2.hw.kernels import (
    DecodeLayer,
    DecodeLayersUnsupported,
    register_kernel,
    unregister_backend,
)
from tttv2.hw.kernels.decode_layers import NO_DECODE_LAYERS


def test_the_path_is_decided_at_construction_and_moves() -> None:
    stack = _stack(_spec(), torch.float32, None)
    assert stack.decode_path.kind == "fused" and stack.decode_path.device == "cpu"
    meta_stack = TransformerStack(_spec(), device="meta")
    assert meta_stack.decode_path.kind == "eager"
    assert "no decode_layers kernel" in meta_stack.decode_path.reason
    stack.fuse_decode_layers(False)
    assert (
        stack.decode_path.kind == "eager"
        and stack.decode_path.reason == "fuse_decode_layers is off"
    )
    stack.fuse_decode_layers(True)
    assert stack.decode_path.kind == "fused"


def test_forward_follows_the_recorded_path_without_deciding_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack = _stack(_spec(), torch.float32, None)
    import tttv2.blocks.patterns.transformer_stack as module

    def no_lookups(*args, **kwargs):  # forward must not look parameters or kernels up
        raise AssertionError("forward decided the decode path again")

    monkeypatch.setattr(module, "device_params", no_lookups)
    monkeypatch.setattr(module, "get_kernel", no_lookups)
    _, reasons = _generate(stack, PROMPTS, 2)
    assert reasons == [None, None]  # ran fused, as recorded


class _Recording:
    """A decode_layers kernel of a test backend: records what the stack hands it."""

    def __init__(self) -> None:
        self.layers: list[DecodeLayer] = []

    def unavailable(self) -> str | None:
        return None

    def __call__(self, layers, k_pools, v_pools):
        self.layers = list(layers)
        raise DecodeLayersUnsupported("the recording kernel runs nothing")


def test_fused_decode_asks_the_registry_and_hands_it_decode_weights() -> None:
    kernel = _Recording()
    register_kernel("recording-cpu", "decode_layers", kernel)
    try:
        stack = _stack(_spec(), torch.float32, None)
        assert stack.decode_path.kind == "fused"
        eager, _ = _generate(_stack(_spec(), torch.float32, False), PROMPTS, 2)
        out, reasons = _generate(stack, PROMPTS, 2)
    finally:
        unregister_backend("recording-cpu")
    assert reasons == ["the recording kernel runs nothing"] * 2  # it ran op by op, and says why
    for a, b in zip(out, eager, strict=True):
        assert torch.equal(a, b)
    assert len(kernel.layers) == 3
    first = stack.layers[0]
    assert kernel.layers[0].weights.qkv_weight is first.attention.qkv_proj.weight
    assert kernel.layers[0].rotary is first.attention.rotary
    assert kernel.layers[0].shape.num_kv_heads == 2


def test_a_device_without_the_kernel_records_why() -> None:
    register_kernel("none-cpu", "decode_layers", NO_DECODE_LAYERS)
    try:
        stack = _stack(_spec(), torch.float32, None)
    finally:
        unregister_backend("none-cpu")
    assert stack.decode_path.kind == "eager"
    assert stack.fused_decode_reason == NO_DECODE_LAYERS.unavailable()


def test_decode_weights_says_why_a_layer_cannot_be_fused() -> None:
    stack = _stack(_spec(), torch.float32, None)
    layer = stack.layers[0]
    assert layer.decode_fusion_blocker() is None
    assert (
        layer.decode_weights() == "attention is not running the paged DECODE implementation"
    )  # PREFILL now
    stack.set_mode("decode")
    assert isinstance(layer.decode_weights(), DecodeLayer)
    spec = _spec()
    norm = NormSpec(dim=64, eps=1e-5)
    sandwich = TransformerStack(
        replace(spec, layers=tuple(replace(lay, post_attn_norm=norm) for lay in spec.layers))
    )
    sandwich.layers[0].attention.fuse_qkv()
    sandwich.layers[0].ffn.fuse_gate_up()
    assert (
        sandwich.layers[0].decode_fusion_blocker() is None
    )  # Gemma 2/3's sandwich norms are fused too
    parallel = TransformerStack(
        replace(spec, layers=tuple(replace(lay, parallel=True) for lay in spec.layers))
    )
    assert parallel.layers[0].decode_fusion_blocker() == (
        "parallel attention and feed-forward (the kernel computes sequential layers)"
    )


def _moe_stack(expert_bias: bool = False) -> TransformerStack:
    spec = _spec()
    ffn = replace(spec.layers[0].ffn, bias=expert_bias)
    moe = MoESpec(hidden_dim=ffn.hidden_dim, num_experts=4, top_k=2, expert=ffn)
    stack = TransformerStack(
        replace(spec, layers=tuple(replace(lay, ffn=moe) for lay in spec.layers))
    )
    for layer in stack.layers:
        layer.attention.fuse_qkv()
    stack.set_mode("decode")
    return stack


def test_a_moe_layer_describes_its_experts_and_router() -> None:
    layer = _moe_stack().layers[0]
    described = layer.decode_weights()
    assert not isinstance(described, str) and described.moe is not None
    experts = layer.ffn.experts
    assert [tuple(map(torch.Tensor.data_ptr, e)) for e in described.moe.experts] == [
        (e.gate_proj.weight.data_ptr(), e.up_proj.weight.data_ptr(), e.down_proj.weight.data_ptr())
        for e in experts
    ]
    assert described.moe.route == layer.ffn.decode_routing
    assert described.weights.gate_up_weight is None and described.weights.down_weight is None


def test_a_moe_layer_with_experts_the_kernel_does_not_compute_says_why() -> None:
    layer = _moe_stack(expert_bias=True).layers[0]
    reason = layer.decode_weights()
    assert isinstance(reason, str) and reason.startswith("a mixture of experts whose experts")
    assert reason == layer.decode_fusion_blocker()
