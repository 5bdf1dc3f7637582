"""The whole-stack decode call: the same results as calling each layer in turn, its
bindings checked (layer named), failures naming the layer, nothing out of the buffers."""

from __future__ import annotations

import pytest
import torch

# the layer kernel's test module skips itself (and so this one) where the kernel cannot be built
from test_hw_native_decode_layer import BS, SHAPE, layer_batch, layer_weights

from tttv2.hw.kernels.native.decode_layer import NativeDecodeLayer, NativeDecodeStep
from tttv2.hw.kernels.native.decode_stack import NativeDecodeStack

LAYERS = 3


def _setup(rows: int = 3):
    layers = [NativeDecodeLayer(layer_weights(seed=i), SHAPE) for i in range(LAYERS)]
    h, cos, sin, k_pool, v_pool, slots, tables, lens = layer_batch(rows)
    k_pools = [k_pool.clone() for _ in layers]
    v_pools = [v_pool.clone() + i for i, _ in enumerate(layers)]
    return layers, h, cos, sin, k_pools, v_pools, slots, tables, lens


def test_one_call_equals_the_layers_one_by_one() -> None:
    layers, h, cos, sin, k_pools, v_pools, slots, tables, lens = _setup()
    h2, k2, v2 = h.clone(), [k.clone() for k in k_pools], [v.clone() for v in v_pools]
    ws = layers[0].workspace_bytes(3, torch.float32)
    cos_rows, sin_rows = torch.zeros(8, cos.shape[1]), torch.zeros(8, sin.shape[1])
    stack = NativeDecodeStack(layers, k_pools, v_pools, [cos_rows] * LAYERS, [sin_rows] * LAYERS)
    with torch.inference_mode():
        for layer, k, v in zip(layers, k2, v2, strict=True):
            layer(NativeDecodeStep(h2, slots, tables, lens, torch.float32, ws), k, v, cos, sin)
        cos_rows[:3], sin_rows[:3] = cos, sin
        stack(NativeDecodeStep(h, slots, tables, lens, torch.float32, ws))
    assert torch.equal(h, h2)
    assert all(torch.equal(a, b) for a, b in zip(k_pools + v_pools, k2 + v2, strict=True))
    assert not torch.equal(h, _setup()[1])  # the layers did run


def test_bad_bindings_name_the_layer() -> None:
    layers, h, cos, sin, k_pools, v_pools, *_ = _setup()
    rows = [torch.zeros(4, cos.shape[1])] * LAYERS
    bad = list(v_pools)
    bad[2] = bad[2][:, :, :1]
    with pytest.raises(ValueError, match="layer 2: .*v_pool"):
        NativeDecodeStack(layers, k_pools, bad, rows, rows)
    short = list(rows)
    short[1] = torch.zeros(4, cos.shape[1] - 1)
    with pytest.raises(ValueError, match="layer 1: .*cos/sin"):
        NativeDecodeStack(layers, k_pools, v_pools, rows, short)
    with pytest.raises(ValueError, match="3 layers need as many"):
        NativeDecodeStack(layers, k_pools[:2], v_pools, rows, rows)


def test_a_step_that_does_not_fit_is_refused() -> None:
    layers, h, cos, sin, k_pools, v_pools, slots, tables, lens = _setup()
    rows = [torch.zeros(2, cos.shape[1])] * LAYERS  # room for 2 rows, the step has 3
    stack = NativeDecodeStack(layers, k_pools, v_pools, rows, rows)
    with torch.inference_mode(), pytest.raises(ValueError, match="buffers hold 2 rows"):
        stack(
            NativeDecodeStep(
                h, slots, tables, lens, torch.float32, layers[0].workspace_bytes(3, torch.float32)
            )
        )
    with torch.inference_mode(), pytest.raises(ValueError, match="do not fit"):
        stack(NativeDecodeStep(h[:, :-1].contiguous(), slots, tables, lens, torch.float32, 1 << 16))


def test_a_failing_layer_is_named_and_stops_the_call() -> None:
    layers, h, cos, sin, k_pools, v_pools, slots, tables, lens = _setup()
    small = [k[:2].clone() for k in k_pools]  # 2 blocks: the step's slots are past them
    rows = [torch.zeros(4, cos.shape[1])] * LAYERS
    stack = NativeDecodeStack(layers, small, [v[:2].clone() for v in v_pools], rows, rows)
    before = h.clone()
    with torch.inference_mode(), pytest.raises(ValueError, match="layer 0: .*outside the cache"):
        stack(
            NativeDecodeStep(
                h, slots, tables, lens, torch.float32, layers[0].workspace_bytes(3, torch.float32)
            )
        )
    assert torch.equal(h, before)
    assert BS == small[0].shape[1]
