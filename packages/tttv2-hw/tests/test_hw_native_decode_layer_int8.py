"""The one-call decoder layer with int8 projection weights (per-row float32 scales): the
same layer as with the dequantised weights, and its checks of the int8 operands."""

from __future__ import annotations

import pytest
import torch
from test_hw_native_decode_layer import SHAPE, layer_batch, layer_reference, layer_weights

from tttv2.hw.kernels.native.decode_layer import (
    DecodeLayerWeights,
    NativeDecodeLayer,
    NativeDecodeStep,
)
from tttv2.hw.precision import dequantize_int8, quantize_int8

PROJECTIONS = ("qkv", "o", "gate_up", "down")


def _int8(
    w: DecodeLayerWeights, dtype: torch.dtype
) -> tuple[DecodeLayerWeights, DecodeLayerWeights]:
    """(int8 weights with scales and norms/biases in ``dtype``, the same layer dequantised to fp32)."""
    fields = {k: (v.to(dtype) if v is not None else None) for k, v in w.__dict__.items()}
    plain = dict(w.__dict__)
    for p in PROJECTIONS:
        q, scale = quantize_int8(getattr(w, f"{p}_weight"))
        fields[f"{p}_weight"], fields[f"{p}_scale"] = q, scale
        plain[f"{p}_weight"] = dequantize_int8(q, scale)
        if fields[f"{p}_bias"] is not None:
            plain[f"{p}_bias"] = fields[f"{p}_bias"].float()
    plain["attn_norm"], plain["ffn_norm"] = fields["attn_norm"].float(), fields["ffn_norm"].float()
    return DecodeLayerWeights(**fields), DecodeLayerWeights(**plain)


@pytest.mark.parametrize("bias", [True, False])
def test_int8_layer_equals_the_dequantised_layer(bias: bool) -> None:
    w8, plain = _int8(layer_weights(bias=bias), torch.float32)
    assert w8.int8 and not plain.int8
    h, cos, sin, k_pool, v_pool, slots, tables, lens = layer_batch()
    expected = layer_reference(
        plain, h.clone(), cos, sin, k_pool.clone(), v_pool.clone(), slots, tables, lens
    )
    layer = NativeDecodeLayer(w8, SHAPE)
    assert layer.dtype == torch.float32
    with torch.inference_mode():
        step = NativeDecodeStep(
            h, slots, tables, lens, torch.float32, layer.workspace_bytes(3, torch.float32)
        )
        layer.check_step(step, k_pool, v_pool, cos)
        layer(step, k_pool, v_pool, cos, sin)
    torch.testing.assert_close(h, expected, rtol=1e-5, atol=1e-5)


def test_bf16_int8_layer_is_close_to_the_bf16_layer_of_its_round_trip() -> None:
    """bf16 activations: int8 codes against the bf16 weights int8_round_trip gives (the
    same numbers up to one bf16 rounding of each weight): the layer outputs agree norm-wise
    to 2% (measured: 0.7%; the layer rounds every intermediate to bf16)."""
    w8, plain = _int8(layer_weights(), torch.bfloat16)
    rounded = DecodeLayerWeights(
        **{k: (v.bfloat16() if v is not None else None) for k, v in plain.__dict__.items()}
    )
    outs = []
    for w in (w8, rounded):
        h, cos, sin, k_pool, v_pool, slots, tables, lens = layer_batch()
        h, cos, sin, k_pool, v_pool = (t.bfloat16() for t in (h, cos, sin, k_pool, v_pool))
        layer = NativeDecodeLayer(w, SHAPE)
        with torch.inference_mode():
            step = NativeDecodeStep(
                h, slots, tables, lens, torch.bfloat16, layer.workspace_bytes(3, torch.bfloat16)
            )
            layer(step, k_pool, v_pool, cos, sin)
        outs.append(h.double())
    assert not torch.equal(outs[0], layer_batch()[0].bfloat16().double())  # the layer ran
    assert (outs[0] - outs[1]).norm() <= 2e-2 * outs[1].norm()


def test_int8_operands_are_checked_by_name() -> None:
    w8, _ = _int8(layer_weights(), torch.float32)
    with pytest.raises(ValueError, match="o_scale"):
        NativeDecodeLayer(DecodeLayerWeights(**{**w8.__dict__, "o_scale": None}), SHAPE)
    with pytest.raises(ValueError, match="qkv_scale"):
        NativeDecodeLayer(
            DecodeLayerWeights(**{**w8.__dict__, "qkv_scale": w8.qkv_scale.double()}), SHAPE
        )
    with pytest.raises(ValueError, match="down_weight"):  # one projection left in float
        NativeDecodeLayer(
            DecodeLayerWeights(**{**w8.__dict__, "down_weight": w8.down_weight.float()}), SHAPE
        )
    with pytest.raises(ValueError, match="o_bias"):  # biases in the activations' dtype
        NativeDecodeLayer(
            DecodeLayerWeights(**{**w8.__dict__, "o_bias": w8.o_bias.bfloat16()}), SHAPE
        )
    plain = layer_weights()
    with pytest.raises(ValueError, match="not int8"):
        NativeDecodeLayer(DecodeLayerWeights(**{**plain.__dict__, "o_scale": w8.o_scale}), SHAPE)
