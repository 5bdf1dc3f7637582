"""A mixture-of-experts layer's feed-forward in the native decode stack (``decode_moe.c``).

:class:`NativeDecodeMoE` binds one layer's experts once (their weight pointers by expert
id, ``MoEExperts`` in ``decode_moe.c``) and owns the routing the C code reads
(``MoERouting``). At a step, the stack call stops after the layer's ``ffn_norm``;
:meth:`NativeDecodeMoE.route` hands the normed rows to the layer's router
(:attr:`~tttv2.hw.kernels.decode_layers.DecodeMoE.route`, the block's own code), checks
what it returns and writes it where the C code reads it; the stack then resumes at the
layer's feed-forward.
"""

from __future__ import annotations

import ctypes

import torch

from tttv2.hw.kernels.decode_layers import DecodeLayerWeights, DecodeMoE, DecodeRouting
from tttv2.hw.kernels.native.routed_experts import ACTIVATIONS

_p = ctypes.c_void_p


class _Routing(ctypes.Structure):  # MoERouting in decode_moe.c
    _fields_ = [
        ("counts", _p), ("rows", _p), ("weights", _p), ("shared_gate", _p), ("assigned", ctypes.c_int64),
    ]  # fmt: skip


class _Experts(ctypes.Structure):  # MoEExperts in decode_moe.c
    _fields_ = [
        ("experts", ctypes.c_int64), ("inter", ctypes.c_int64),
        ("gate_w", _p), ("up_w", _p), ("down_w", _p),
        ("activation", ctypes.c_int32), ("routing", ctypes.POINTER(_Routing)),
    ]  # fmt: skip


class NativeDecodeMoE:
    """One layer's routed experts, bound (see the module docstring). Construction checks
    every expert (``ValueError`` naming it) and keeps the tensors alive; they must not be
    replaced while the binding is used."""

    def __init__(self, moe: DecodeMoE, weights: DecodeLayerWeights, hidden: int) -> None:
        if moe.activation not in ACTIVATIONS:
            raise ValueError(
                f"NativeDecodeMoE: activation {moe.activation!r} is not one of {sorted(ACTIVATIONS)}"
            )
        experts = list(moe.experts)
        if not experts:
            raise ValueError("NativeDecodeMoE: no experts")
        self.dtype = weights.qkv_weight.dtype  # the projections' (not int8: checked by the layer)
        inter = experts[0][0].shape[0] if experts[0][0].dim() == 2 else -1
        for e, triple in enumerate(experts):
            shapes = ((inter, hidden), (inter, hidden), (hidden, inter))
            for name, w, shape in zip(("gate", "up", "down"), triple, shapes, strict=True):
                if (
                    tuple(w.shape) != shape
                    or min(shape) < 1
                    or w.dtype != self.dtype
                    or not w.is_contiguous()
                    or not w.is_cpu
                ):
                    raise ValueError(
                        f"NativeDecodeMoE: expert {e}'s {name} weight is {tuple(w.shape)} {w.dtype}; "
                        f"expected a contiguous CPU {shape} tensor in the projections' {self.dtype}"
                    )
        self._moe, self.num_experts, self.hidden = moe, len(experts), hidden
        n = self.num_experts
        self._pointers = [(_p * n)(*(e[j].data_ptr() for e in experts)) for j in range(3)]
        self._keep = experts
        self._routing = _Routing()
        #: the current routing's tensors, kept alive while the C code reads them
        self._routed: tuple[torch.Tensor | None, ...] = ()
        self._args = _Experts(
            n, inter, *(ctypes.cast(p, _p) for p in self._pointers), ACTIVATIONS[moe.activation],
            ctypes.pointer(self._routing),
        )  # fmt: skip
        #: the address of the bound ``MoEExperts`` struct (the layer's ``moe`` pointer)
        self.address = ctypes.addressof(self._args)

    def route(self, normed: torch.Tensor) -> None:
        """Route the step's ``normed`` rows ``[rows, hidden]`` (a view of the stack's
        workspace) with the layer's router and write the routing for the C code;
        ``ValueError`` when the router's answer does not fit (see
        :class:`~tttv2.hw.kernels.decode_layers.DecodeRouting`)."""
        routing = self._moe.route(normed)
        rows = normed.shape[0]
        self._routed = checked = _checked(routing, rows, self.num_experts, normed.dtype)
        counts, assigned, weights, gate = checked
        r = self._routing
        r.counts, r.rows, r.weights = counts.data_ptr(), assigned.data_ptr(), weights.data_ptr()
        r.shared_gate = gate.data_ptr() if gate is not None else None
        r.assigned = assigned.shape[0]


def _as(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` as a contiguous ``dtype`` tensor, without a torch call when it is one already (a
    step runs this a few times per MoE layer, each call a dispatch through cold caches)."""
    return t if t.dtype == dtype and t.is_contiguous() else t.to(dtype).contiguous()


def _checked(
    routing: DecodeRouting, rows: int, experts: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(counts, rows, weights, shared gate or None) as the C code reads them. That the counts
    sum to the assignments, are not negative and route rows of the step is checked there."""
    if not isinstance(routing, DecodeRouting):
        raise ValueError(
            f"NativeDecodeMoE: the router returned {type(routing).__name__}, not a DecodeRouting"
        )
    counts = _as(routing.counts, torch.int64)
    assigned = _as(routing.rows, torch.int64)
    weights = _as(routing.weights, torch.float32)
    gate = routing.shared_gate
    if counts.shape != (experts,) or assigned.dim() != 1 or weights.shape != assigned.shape:
        raise ValueError(
            f"NativeDecodeMoE: routing counts {tuple(counts.shape)}, rows {tuple(assigned.shape)}, weights "
            f"{tuple(weights.shape)}; expected ({experts},) counts and one row and weight per assignment"
        )
    if gate is not None:
        if gate.numel() != rows or gate.dtype != dtype:
            raise ValueError(
                f"NativeDecodeMoE: shared_gate {tuple(gate.shape)} {gate.dtype}; expected {rows} values in {dtype}"
            )
        gate = _as(gate, dtype)
    return counts, assigned, weights, gate
