"""A whole decoder stack's decode step in one native call (``tttv2_decode_layers``).

:class:`~tttv2.hw.kernels.native.decode_layer.NativeDecodeLayer` already makes a layer one
call; a 30-layer model still paid, per step, 30 ctypes calls with their argument packing
and a Python loop looking up each layer's pools and rotary rows (~0.5 ms of a ~15 ms
SmolLM2-135M step on the 2-core machines here). :class:`NativeDecodeStack` binds the
layers to their cache pools and to cos/sin buffers once; a step is then one call that runs
the layers in order on the step's rows (the same kernel, so the same results bit for bit).

The caller owns the cos/sin buffers (``[rows_max, rotary_dim / 2]``, contiguous) and
writes the step's rows into their first ``rows`` rows before each call; layers that rotate
alike share one pair.

A mixture-of-experts layer (``NativeDecodeLayer.moe``) has its router in Python: the call
stops after that layer's ``ffn_norm``, the layer's router routes the normed rows (a view
of the step's workspace) and a second call resumes at the layer's experts; a step makes
one call plus one per MoE layer.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from tttv2.hw.kernels.native.build import (
    NativeKernelUnavailable,
    native_function,
    native_lookup,
)
from tttv2.hw.kernels.native.decode_layer import (
    NativeDecodeLayer,
    NativeDecodeStep,
    decode_layer_kernel,
    status_error,
)
from tttv2.hw.kernels.native.tensors import DTYPE_CODES

if TYPE_CHECKING:
    from _ctypes import CFuncPtr

_p = ctypes.c_void_p


#: The stack call's status when it stops for a mixture-of-experts layer's routing.
_ROUTE = 4


class _LayerCall(ctypes.Structure):  # LayerCall in decode_layer.c
    _fields_ = [
        ("layer", _p), ("cos", _p), ("sin", _p), ("k_pool", _p), ("v_pool", _p),
        ("num_blocks", ctypes.c_int64), ("block_size", ctypes.c_int64), ("kvt", ctypes.c_int32),
    ]  # fmt: skip


@native_lookup
def decode_stack_kernel() -> CFuncPtr | NativeKernelUnavailable:
    """The C function, or why there is none (the library of the one-layer kernel)."""
    layer = decode_layer_kernel()
    if isinstance(layer, NativeKernelUnavailable):
        return layer
    return native_function(
        "decode_layer",
        "tttv2_decode_layers",
        (
            ctypes.POINTER(_LayerCall),
            ctypes.c_int64,
            _p,
            ctypes.POINTER(ctypes.c_int64),
            ctypes.c_int,
        ),
    )


class NativeDecodeStack:
    """``stack(step)`` runs every layer's decode step on ``step.hidden`` in place, in order.

    ``k_pools[i], v_pools[i]`` are layer ``i``'s cache pools and ``cos[i], sin[i]`` its
    rotary row buffers (``None`` for layers without rotation). Construction checks all of
    them (``ValueError`` naming the layer) and keeps them alive; their storage must stay
    where it is while the stack is used (build a new stack after replacing a pool)."""

    def __init__(
        self,
        layers: Sequence[NativeDecodeLayer],
        k_pools: Sequence[torch.Tensor],
        v_pools: Sequence[torch.Tensor],
        cos: Sequence[torch.Tensor | None],
        sin: Sequence[torch.Tensor | None],
    ) -> None:
        fn = decode_stack_kernel()
        if isinstance(fn, NativeKernelUnavailable):
            raise fn
        n = len(layers)
        if n == 0 or not len(k_pools) == len(v_pools) == len(cos) == len(sin) == n:
            raise ValueError(
                f"NativeDecodeStack: {n} layers need as many k/v pools and cos/sin buffers, got "
                f"{len(k_pools)}, {len(v_pools)}, {len(cos)}, {len(sin)}"
            )
        first = layers[0]
        rotating = [c for layer, c in zip(layers, cos, strict=True) if layer.shape.rotary_dim]
        self.dtype, self.hidden = first.dtype, first.hidden
        self.cos_dtype = rotating[0].dtype if rotating and rotating[0] is not None else None
        self.max_rows = min(
            (c.shape[0] for c in rotating if c is not None and c.dim() == 2), default=None
        )
        for i, layer in enumerate(layers):
            where = f"NativeDecodeStack: layer {i}: "
            if layer.dtype != self.dtype or layer.hidden != self.hidden:
                raise ValueError(
                    f"{where}width {layer.hidden} in {layer.dtype}; layer 0 has {self.hidden} in {self.dtype}"
                )
            try:
                layer.check_pools(k_pools[i], v_pools[i])
                if layer.shape.rotary_dim:
                    assert self.cos_dtype is not None and self.max_rows is not None
                    for table in (cos[i], sin[i]):
                        layer.check_cos(table, self.max_rows, self.cos_dtype)
            except ValueError as bad:
                raise ValueError(where + str(bad)) from None
        self._fn = fn
        self._k_pools = list(k_pools)  # named in errors
        self._keep = (list(layers), list(v_pools), list(cos), list(sin))

        def ptr(t: torch.Tensor | None) -> int | None:
            return t.data_ptr() if t is not None else None

        self._calls = (_LayerCall * n)(*(
            _LayerCall(layer.args_address, ptr(cos[i]), ptr(sin[i]), k.data_ptr(), v.data_ptr(),
                       k.shape[0], k.shape[1], DTYPE_CODES[k.dtype])
            for i, (layer, k, v) in enumerate(zip(layers, k_pools, v_pools, strict=True))
        ))  # fmt: skip
        self._n = n
        self._at = ctypes.c_int64(0)
        self._at_ref = ctypes.byref(self._at)
        self._moe = [layer.moe for layer in layers]

    def check_step(self, step: NativeDecodeStep) -> None:
        """Raise ``ValueError`` unless ``step`` fits the stack (its rows' width and dtype,
        its cos dtype, at most as many rows as the cos/sin buffers hold)."""
        if step.hidden.dtype != self.dtype or step.hidden.shape[1] != self.hidden:
            raise ValueError(
                f"NativeDecodeStack: hidden rows {tuple(step.hidden.shape)} {step.hidden.dtype} do not fit "
                f"layers of width {self.hidden} in {self.dtype}"
            )
        if self.cos_dtype is not None and (
            step.cos_dtype != self.cos_dtype or step.rows > (self.max_rows or 0)
        ):
            raise ValueError(
                f"NativeDecodeStack: the step has {step.rows} rows with cos/sin in {step.cos_dtype}; the "
                f"buffers hold {self.max_rows} rows in {self.cos_dtype}"
            )

    def __call__(self, step: NativeDecodeStep) -> None:
        """One decode step of every layer (``check_step`` first; the cos/sin buffers must
        hold the step's rows)."""
        self.check_step(step)
        self._at.value = 0
        status = self._fn(self._calls, self._n, step.ref, self._at_ref, 0)
        while status == _ROUTE:  # a mixture-of-experts layer's router, then on from its experts
            moe = self._moe[self._at.value]
            assert moe is not None  # only those stop
            moe.route(step.normed_rows())
            status = self._fn(self._calls, self._n, step.ref, self._at_ref, 1)
        if status != 0:
            i = self._at.value
            error = status_error(status, step, self._k_pools[i])
            raise type(error)(f"layer {i}: {error}")
