"""RMSNorm by the native kernel (``native/rms_norm.c``): one call instead of the ~8 aten
ops torch runs per half-precision norm. At decode a norm is one row of a few thousand
values, so those ops' dispatch, not the arithmetic, was its cost (SmolLM2-135M: 61 norms per
step at ~65 us each inside the model, against a few us here). Same order of operations as
``F.rms_norm`` (fp32 sum of squares, fp32 products, one rounding); the sum's order differs,
so results may differ from torch's in the last bit."""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

import torch

from tttv2.hw.kernels.native import (
    DTYPE_CODES,
    NativeKernelUnavailable,
    native_allowed,
    native_function,
    native_lookup,
    records_grad,
)

if TYPE_CHECKING:
    from _ctypes import CFuncPtr

_ARGTYPES = (
    (ctypes.c_void_p, ctypes.c_int) * 3 + (ctypes.c_int64,) * 2 + (ctypes.c_float, ctypes.c_int)
)


@native_lookup
def _kernel() -> CFuncPtr | NativeKernelUnavailable:
    return native_function("rms_norm", "tttv2_rms_norm", _ARGTYPES)


def native_rms_norm_applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """CPU, float dtypes, a 1-D weight of x's last dim, inference outside torch.compile."""
    return (
        x.is_cpu
        and weight.is_cpu
        and x.dtype in DTYPE_CODES
        and weight.dtype in DTYPE_CODES
        and weight.dim() == 1
        and weight.is_contiguous()
        and x.dim() >= 1
        and weight.shape[0] == x.shape[-1]
        and not records_grad(x, weight)
        and native_allowed()
        and not isinstance(_kernel(), NativeKernelUnavailable)
    )


def native_rms_norm(
    x: torch.Tensor, weight: torch.Tensor, eps: float, *, unit_offset: bool = False
) -> torch.Tensor:
    """``x / sqrt(mean(x^2) + eps) * w`` (``* (1 + w)`` with ``unit_offset``) in x's dtype.
    Call only where :func:`native_rms_norm_applies`."""
    fn = _kernel()
    if isinstance(fn, NativeKernelUnavailable):
        raise fn
    xc = x.contiguous()
    y = torch.empty_like(xc)
    dim = x.shape[-1]
    rows = xc.numel() // dim if dim else 0
    code = DTYPE_CODES[x.dtype]
    status = fn(
        xc.data_ptr(),
        code,
        weight.data_ptr(),
        DTYPE_CODES[weight.dtype],
        y.data_ptr(),
        code,
        rows,
        dim,
        eps,
        int(unit_offset),
    )
    if status != 0:
        raise RuntimeError(f"rms_norm kernel failed with status {status}")
    return y
