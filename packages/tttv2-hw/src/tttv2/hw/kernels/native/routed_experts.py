"""The routed experts of an MoE layer at decode in one native call (``routed_experts.c``).

At decode a mixture-of-experts layer runs each chosen expert on 1-16 rows: three few-row
products bound by reading the expert's weights, plus ~10 eager operations (gather, two
activations, the routing-weight product, ``index_add_``) of a few microseconds of dispatch
each. This kernel does all chosen experts of a step in one call, with the few-row linear
kernel of :mod:`~tttv2.hw.kernels.native.skinny_linear` and the same roundings as the
eager block, so only the chosen experts' weights are read and nothing else is dispatched.
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
from tttv2.hw.kernels.native.skinny_linear import CHUNK_BYTES, SKINNY_MAX_ROWS
from tttv2.hw.kernels.native.tensors import DTYPE_CODES, native_allowed, records_grad

if TYPE_CHECKING:
    from _ctypes import CFuncPtr

#: The gated activations the kernel computes, by their FeedForwardSpec names.
ACTIVATIONS = {"silu": 0, "gelu_tanh": 1}

_p, _i64 = ctypes.c_void_p, ctypes.c_int64
_ARGTYPES = (
    _p,
    ctypes.c_int,
    _p,
    _i64,
    _i64,
    _i64,
    _p,
    _p,
    _p,
    _i64,
    _p,
    _p,
    _p,
    ctypes.c_int,
    ctypes.c_int,
    _i64,
)


@native_lookup
def routed_experts_kernel() -> CFuncPtr | NativeKernelUnavailable:
    """The C function, or why there is none (built once per process, cached on disk)."""
    return native_function("routed_experts", "tttv2_routed_experts", _ARGTYPES)


def native_routed_experts(
    x: torch.Tensor,
    rows: torch.Tensor,
    weights: torch.Tensor,
    counts: Sequence[int],
    experts: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    activation: str,
) -> torch.Tensor | None:
    """The ``routed_experts`` kernel for CPU tensors, or ``None`` where it does not serve
    the call (see :mod:`tttv2.hw.kernels.routed_experts` for the contract): the caller then
    runs the experts itself."""
    if not (0 < len(experts) == len(counts) and max(counts) <= SKINNY_MAX_ROWS):
        return None
    if activation not in ACTIVATIONS or x.dtype not in DTYPE_CODES or not x.is_cpu or x.dim() != 2:
        return None
    tokens, hidden = x.shape
    gate0 = experts[0][0]
    inter = gate0.shape[0]
    for gate, up, down in experts:
        for w, shape in ((gate, (inter, hidden)), (up, (inter, hidden)), (down, (hidden, inter))):
            if (
                w.dtype is not x.dtype
                or tuple(w.shape) != shape
                or not w.is_contiguous()
                or not w.is_cpu
            ):
                return None
    if not native_allowed() or records_grad(x, *(w for e in experts for w in e)):
        return None
    fn = routed_experts_kernel()
    if isinstance(fn, NativeKernelUnavailable):
        return None
    x = x.contiguous()
    rows = rows.to(torch.int64).contiguous()
    weights = weights.to(torch.float32).contiguous()
    counts_arr = (ctypes.c_int64 * len(counts))(*counts)
    n = len(experts)
    gates, ups, downs = ((_p * n)(*(e[j].data_ptr() for e in experts)) for j in range(3))
    out = torch.empty_like(x)
    status = fn(
        x.data_ptr(), DTYPE_CODES[x.dtype], out.data_ptr(), tokens, hidden, inter,
        rows.data_ptr(), weights.data_ptr(), counts_arr, n, gates, ups, downs,
        DTYPE_CODES[x.dtype], ACTIVATIONS[activation], CHUNK_BYTES,
    )  # fmt: skip
    if status != 0:
        raise RuntimeError(f"routed_experts kernel failed with status {status}")
    return out
