"""Mixture-of-experts layers in the whole-stack decode call: the call stops for the layer's
router, hands it the normed rows, and adds the routed experts (and the gated shared expert)
it chose, computed against plain PyTorch written out here; a router's bad answer is refused
by name; only kernels that say so take such layers."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

# the layer kernel's test module skips itself (and so this one) where the kernel cannot be built
from test_hw_native_decode_layer import HID, SHAPE, layer_batch, layer_weights

from tttv2.hw.kernels.decode_layers import (
    NO_DECODE_LAYERS,
    DecodeMoE,
    DecodeRouting,
    takes_moe_layers,
)
from tttv2.hw.kernels.native.decode_layer import NativeDecodeLayer, NativeDecodeStep
from tttv2.hw.kernels.native.decode_layers import NATIVE_DECODE_LAYERS
from tttv2.hw.kernels.native.decode_stack import NativeDecodeStack

EXPERTS, EXPERT_INTER = 5, 24


def expert_weights(seed: int = 7) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g) * 0.3  # noqa: E731
    return [
        (r(EXPERT_INTER, HID), r(EXPERT_INTER, HID), r(HID, EXPERT_INTER)) for _ in range(EXPERTS)
    ]


class Router:
    """A fixed routing of three rows: row 0 -> experts 1 and 4, row 1 -> 4, row 2 -> 1, 2.
    Records the rows it was handed."""

    def __init__(self, gate: torch.Tensor | None = None, answer=None) -> None:
        self.seen: list[torch.Tensor] = []
        self.gate, self.answer = gate, answer

    def __call__(self, normed: torch.Tensor) -> DecodeRouting:
        self.seen.append(normed.clone())
        if self.answer is not None:
            return self.answer
        # assignments grouped by expert: 1: rows 0, 2; 2: row 2; 4: rows 0, 1
        rows = torch.tensor([0, 2, 2, 0, 1])
        weights = torch.tensor([0.6, 0.3, 0.7, 0.4, 1.0])
        counts = torch.tensor([0, 2, 1, 0, 2])
        return DecodeRouting(rows, weights, counts, self.gate)


def routed_reference(n: torch.Tensor, experts) -> torch.Tensor:
    out = torch.zeros_like(n, dtype=torch.float64)
    for row, e, w in ((0, 1, 0.6), (2, 1, 0.3), (2, 2, 0.7), (0, 4, 0.4), (1, 4, 1.0)):
        gate, up, down = (t.double() for t in experts[e])
        x = n[row].double()
        out[row] += w * (down @ (F.silu(gate @ x) * (up @ x)))
    return out


def _run(layers, rows: int = 3) -> torch.Tensor:
    h, cos, sin, k_pool, v_pool, slots, tables, lens = layer_batch(rows)
    cos_rows, sin_rows = torch.zeros(8, cos.shape[1]), torch.zeros(8, sin.shape[1])
    cos_rows[:rows], sin_rows[:rows] = cos, sin
    n = len(layers)
    stack = NativeDecodeStack(
        layers, [k_pool.clone() for _ in layers], [v_pool.clone() for _ in layers],
        [cos_rows] * n, [sin_rows] * n,
    )  # fmt: skip
    ws = max(layer.workspace_bytes(rows, torch.float32) for layer in layers)
    with torch.inference_mode():
        stack(NativeDecodeStep(h, slots, tables, lens, torch.float32, ws))
    return h


def _shared_reference(n: torch.Tensor, w) -> torch.Tensor:
    """The dense feed-forward of ``w`` (the shared expert) on ``n``, with its biases."""
    gu = n.double() @ w.gate_up_weight.double().T + w.gate_up_bias.double()
    gate, up = gu.chunk(2, dim=-1)
    return (F.silu(gate) * up) @ w.down_weight.double().T + w.down_bias.double()


@pytest.mark.parametrize("shared", ["none", "ungated", "gated"])
def test_a_moe_layer_adds_the_experts_its_router_chose(shared: str) -> None:
    """[dense, moe] against [dense, the same layer with its shared expert as a dense
    feed-forward]: the MoE layer's output is h1 + routed(n) (+ gate * shared(n)), with n
    the rows its router was handed, h1 the residual after attention."""
    dense, layer = layer_weights(seed=0), layer_weights(seed=1)
    gate = torch.tensor([[0.25], [1.5], [-0.5]]) if shared == "gated" else None
    router = Router(gate)
    moe_weights = layer
    if shared == "none":
        moe_weights = dataclasses.replace(layer, gate_up_weight=None, gate_up_bias=None,
                                          down_weight=None, down_bias=None)  # fmt: skip
    moe = NativeDecodeLayer(moe_weights, SHAPE, DecodeMoE(expert_weights(), router, "silu"))
    got = _run([NativeDecodeLayer(dense, SHAPE), moe]).double()
    as_dense = _run([NativeDecodeLayer(dense, SHAPE), NativeDecodeLayer(layer, SHAPE)]).double()
    assert len(router.seen) == 1  # one stop for one MoE layer in one step
    n = router.seen[0].double()
    shared_out = _shared_reference(n, layer)
    h1 = as_dense - shared_out
    expected = h1 + routed_reference(n, expert_weights())
    if shared == "ungated":
        expected += shared_out
    elif shared == "gated":
        assert gate is not None
        expected += gate.double() * shared_out
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(got, as_dense, rtol=1e-2, atol=1e-2)  # the experts do count


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        ("not routing", "not a DecodeRouting"),
        (DecodeRouting(torch.tensor([0, 1]), torch.ones(2), torch.tensor([1, 0, 0, 0, 0])), "do not sum to its assignments"),
        (DecodeRouting(torch.tensor([0]), torch.ones(1), torch.tensor([1, 0])), r"expected \(5,\) counts"),
        (DecodeRouting(torch.tensor([3]), torch.ones(1), torch.tensor([0, 1, 0, 0, 0])), "routed row"),
        (DecodeRouting(torch.tensor([0]), torch.ones(1), torch.tensor([2, -1, 0, 0, 0])), "negative"),
        (DecodeRouting(torch.tensor([0]), torch.ones(1), torch.tensor([0, 1, 0, 0, 0]), torch.ones(2)), "shared_gate"),
    ],
    ids=["type", "count_sum", "count_shape", "row_outside", "negative_count", "gate_shape"],
)  # fmt: skip
def test_a_router_answer_that_does_not_fit_is_refused(answer, match: str) -> None:
    moe = NativeDecodeLayer(
        layer_weights(seed=1), SHAPE, DecodeMoE(expert_weights(), Router(answer=answer), "silu")
    )
    with pytest.raises(ValueError, match=match):
        _run([NativeDecodeLayer(layer_weights(seed=0), SHAPE), moe])


def test_bad_experts_are_named() -> None:
    experts = expert_weights()
    experts[3] = (experts[3][0], experts[3][1][:, :-1].contiguous(), experts[3][2])
    with pytest.raises(ValueError, match="expert 3's up weight"):
        NativeDecodeLayer(layer_weights(), SHAPE, DecodeMoE(experts, Router(), "silu"))
    with pytest.raises(ValueError, match="activation 'relu'"):
        NativeDecodeLayer(layer_weights(), SHAPE, DecodeMoE(expert_weights(), Router(), "relu"))


def test_a_moe_layer_runs_only_in_a_stack() -> None:
    layer = NativeDecodeLayer(layer_weights(), SHAPE, DecodeMoE(expert_weights(), Router(), "silu"))
    h, cos, sin, k_pool, v_pool, slots, tables, lens = layer_batch()
    step = NativeDecodeStep(
        h, slots, tables, lens, torch.float32, layer.workspace_bytes(3, torch.float32)
    )
    with torch.inference_mode(), pytest.raises(ValueError, match="runs in a NativeDecodeStack"):
        layer(step, k_pool, v_pool, cos, sin)


def test_only_kernels_that_say_so_take_moe_layers() -> None:
    assert takes_moe_layers(NATIVE_DECODE_LAYERS)
    assert not takes_moe_layers(NO_DECODE_LAYERS)
