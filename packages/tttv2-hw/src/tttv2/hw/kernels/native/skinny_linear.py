"""``x @ weight.T (+ bias)`` for 1-16 rows on x86 CPUs: the native decode product.

Decode reads every weight once per step for a handful of rows, so it runs at the speed
the weights stream from memory. ``native/skinny_linear.c`` converts half-precision
weights 8 at a time, reuses them for up to 4 rows in registers and prefetches the next
rows. Measured on the 2-core AVX2 machine here, against torch 2.15's kernels
(``torch.mv``/``F.linear``/the fp32 path), one matrix at a time (weights partly in cache):
bf16 one row 1.3-2.4x faster, 8 rows 3-9x; fp32 one row 1.2-2.6x, 8 rows 2-4x. Streaming all
of SmolLM2-135M's layer weights from DRAM at one row: 21 GB/s (torch's read: ~27 GB/s).
Accumulation is fp32 and results are rounded
once, as torch's kernels do; the summation order differs, so results may differ from
torch's in the last bit.

The library is built on first use (:func:`skinny_kernel`); where it cannot be (no
compiler, another ISA, ``TTTV2_NATIVE_KERNELS=0``) :func:`skinny_linear_applies` is False and
callers use PyTorch.
"""

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

#: Most rows sent to the kernel: beyond 16 rows a product is compute-bound and the BLAS
#: GEMM (fp32, or the fp32 path for half inputs) is as fast.
SKINNY_MAX_ROWS = 16
#: Weight bytes walked per chunk, so all row blocks reuse a chunk from L2.
CHUNK_BYTES = 256 << 10  # half the L2 of the Zen 4 cores here
_ARGTYPES = (ctypes.c_void_p, ctypes.c_int) * 4 + (ctypes.c_int64,) * 4
#: ``tttv2_skinny_linear_scaled``: x, xt, w, wt, scale, bias, bt, y, yt, M, N, K, l2_bytes
_SCALED_ARGTYPES = (
    (ctypes.c_void_p, ctypes.c_int) * 2
    + (ctypes.c_void_p,)
    + (ctypes.c_void_p, ctypes.c_int) * 2
    + (ctypes.c_int64,) * 4
)
#: ``dtypes.h``'s code of int8 weights (with one float32 scale per row).
INT8_CODE = 3


@native_lookup
def skinny_kernel() -> CFuncPtr | NativeKernelUnavailable:
    """The C function, or why there is none (built once per process, cached on disk)."""
    return native_function("skinny_linear", "tttv2_skinny_linear", _ARGTYPES)


def skinny_linear_applies(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, rows: int
) -> bool:
    """Whether :func:`skinny_linear` serves this product: CPU, few rows, one dtype as
    ``F.linear`` requires, inference only (the kernel has no backward and torch.compile
    cannot trace it)."""
    return (
        0 < rows <= SKINNY_MAX_ROWS
        and x.is_cpu
        and weight.is_cpu
        and weight.dtype is x.dtype
        and x.dtype in DTYPE_CODES
        and weight.is_contiguous()
        and (bias is None or (bias.dtype is x.dtype and bias.is_contiguous() and bias.is_cpu))
        and not records_grad(x, weight, bias)
        and native_allowed()
        and not isinstance(skinny_kernel(), NativeKernelUnavailable)
    )


def skinny_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``x [..., in] @ weight[out, in].T (+ bias)`` in ``x``'s dtype, by the native kernel.
    Call only where :func:`skinny_linear_applies`."""
    fn = skinny_kernel()
    if isinstance(fn, NativeKernelUnavailable):
        raise fn
    out_features, in_features = weight.shape
    flat = x.dim() == 2 and x.is_contiguous()  # the decode case: no reshaping
    x2 = x if flat else x.reshape(-1, in_features).contiguous()
    y = torch.empty(x2.shape[0], out_features, dtype=x.dtype)
    status = fn(
        x2.data_ptr(), DTYPE_CODES[x.dtype],
        weight.data_ptr(), DTYPE_CODES[weight.dtype],
        bias.data_ptr() if bias is not None else None, DTYPE_CODES[bias.dtype] if bias is not None else 0,
        y.data_ptr(), DTYPE_CODES[x.dtype],
        x2.shape[0], out_features, in_features, CHUNK_BYTES,
    )  # fmt: skip
    if status != 0:
        raise RuntimeError(f"skinny_linear kernel failed with status {status}")
    return y if flat else y.view(*x.shape[:-1], out_features)


@native_lookup
def skinny_int8_kernel() -> CFuncPtr | NativeKernelUnavailable:
    """The C function for int8 weights with per-row scales, or why there is none."""
    return native_function("skinny_linear", "tttv2_skinny_linear_scaled", _SCALED_ARGTYPES)


def skinny_int8_linear_applies(
    x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None, rows: int
) -> bool:
    """Whether :func:`skinny_int8_linear` serves this product: CPU, few rows, int8
    ``weight`` and float32 ``scale`` (contiguous), ``bias`` in ``x``'s dtype, inference only."""
    return (
        0 < rows <= SKINNY_MAX_ROWS
        and x.is_cpu
        and weight.is_cpu
        and x.dtype in DTYPE_CODES
        and weight.dtype is torch.int8
        and weight.is_contiguous()
        and scale.dtype is torch.float32
        and scale.is_cpu
        and scale.is_contiguous()
        and (bias is None or (bias.dtype is x.dtype and bias.is_contiguous() and bias.is_cpu))
        and not records_grad(x, bias)
        and native_allowed()
        and not isinstance(skinny_int8_kernel(), NativeKernelUnavailable)
    )


def skinny_int8_linear(
    x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``x [..., in] @ (scale[:, None] * weight[out, in]).T (+ bias)`` in ``x``'s dtype, by
    the native kernel (int8 codes widened in registers, each output's fp32 sum multiplied
    by its scale, then rounded once). Call only where :func:`skinny_int8_linear_applies`."""
    fn = skinny_int8_kernel()
    if isinstance(fn, NativeKernelUnavailable):
        raise fn
    out_features, in_features = weight.shape
    flat = x.dim() == 2 and x.is_contiguous()
    x2 = x if flat else x.reshape(-1, in_features).contiguous()
    y = torch.empty(x2.shape[0], out_features, dtype=x.dtype)
    status = fn(
        x2.data_ptr(), DTYPE_CODES[x.dtype], weight.data_ptr(), INT8_CODE, scale.data_ptr(),
        bias.data_ptr() if bias is not None else None, DTYPE_CODES[bias.dtype] if bias is not None else 0,
        y.data_ptr(), DTYPE_CODES[x.dtype], x2.shape[0], out_features, in_features, CHUNK_BYTES,
    )  # fmt: skip
    if status != 0:
        raise RuntimeError(f"skinny_linear int8 kernel failed with status {status}")
    return y if flat else y.view(*x.shape[:-1], out_features)
