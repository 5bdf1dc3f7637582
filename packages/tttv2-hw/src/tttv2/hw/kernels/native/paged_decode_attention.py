"""Paged decode attention by the native kernel (``native/paged_decode_attention.c``).

Reads each sequence's keys and values in place through its block table: no gather, no
mask, no copy, and none of the set-up of torch's SDPA, whose CPU flash kernel took ~245 us
for one query against 130 keys (SmolLM2-135M, 9 heads) where this takes a few. Scores,
softmax and the weighted sum are fp32, whatever the cache dtype (torch's path casts the
cache to the query's dtype first), so results are as close to exact as torch's or closer.
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

_ARGTYPES = (
    (ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int)
    + (ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int)
    + (ctypes.c_int64,) * 6
    + (ctypes.c_float, ctypes.c_float, ctypes.c_int64)
)


@native_lookup
def _kernel() -> CFuncPtr | NativeKernelUnavailable:
    return native_function("paged_decode_attention", "tttv2_paged_decode_attention", _ARGTYPES)


def native_paged_decode_attention_applies(
    q: torch.Tensor,
    k_pool: torch.Tensor,
    v_pool: torch.Tensor,
    block_tables: torch.Tensor,
    seq_lens: torch.Tensor,
) -> bool:
    """CPU tensors of float dtypes, contiguous pools, int64 tables, inference outside torch.compile."""
    return (
        q.is_cpu
        and k_pool.is_cpu
        and q.dtype in DTYPE_CODES
        and k_pool.dtype in DTYPE_CODES
        and v_pool.dtype == k_pool.dtype
        and k_pool.is_contiguous()
        and v_pool.is_contiguous()
        and block_tables.dtype == torch.int64
        and seq_lens.dtype == torch.int64
        and block_tables.is_cpu
        and seq_lens.is_cpu
        and not records_grad(q, k_pool, v_pool)
        and native_allowed()
        and not isinstance(_kernel(), NativeKernelUnavailable)
    )


def native_paged_decode_attention(
    q: torch.Tensor,
    k_pool: torch.Tensor,
    v_pool: torch.Tensor,
    block_tables: torch.Tensor,
    seq_lens: torch.Tensor,
    *,
    scale: float,
    sliding_window: int | None = None,
    softcap: float | None = None,
) -> torch.Tensor:
    """Same contract as :func:`~tttv2.hw.kernels.paged_decode_attention.paged_decode_attention`
    (shapes checked there). Call only where :func:`native_paged_decode_attention_applies`."""
    fn = _kernel()
    if isinstance(fn, NativeKernelUnavailable):
        raise fn
    B, H, D = q.shape
    num_blocks, block_size, Hkv, _ = k_pool.shape
    qc, tables, lens = q.contiguous(), block_tables.contiguous(), seq_lens.contiguous()
    out = torch.empty_like(qc)
    status = fn(
        qc.data_ptr(), DTYPE_CODES[q.dtype], k_pool.data_ptr(), v_pool.data_ptr(), DTYPE_CODES[k_pool.dtype],
        tables.data_ptr(), tables.shape[1], lens.data_ptr(), out.data_ptr(), DTYPE_CODES[q.dtype],
        B, H, Hkv, D, num_blocks, block_size,
        scale, softcap or 0.0, sliding_window or 0,
    )  # fmt: skip
    if status != 0:
        raise ValueError(
            f"paged_decode_attention: a block table entry or sequence length is out of range "
            f"(pool of {num_blocks} blocks of {block_size}, table {tuple(tables.shape)}, seq_lens {lens.tolist()})"
            if status == 3
            else f"paged_decode_attention kernel failed with status {status}"
        )
    return out
