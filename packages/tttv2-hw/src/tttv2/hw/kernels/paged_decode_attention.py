"""Attention of one new token per sequence against that sequence's paged KV cache.

Key/value pools are ``[num_blocks, block_size, Hkv, D]``; sequence ``b`` owns the blocks
``block_tables[b, :ceil(seq_lens[b] / block_size)]`` and its new token sits at position
``seq_lens[b] - 1`` (its own K/V already written). Only the blocks that hold the tokens a
query may see are gathered, so cost grows with the context read, not with the pool.

Slots a sequence has not written are masked out, but they are read (as part of a gathered
block) in the batched path: they must hold finite values, so allocate pools with zeros
rather than ``torch.empty`` (a NaN there would survive the zero attention weight).

The G query heads sharing one KV head are treated as G queries against that head's keys,
so GQA needs no copy of the keys and values.

A single sequence whose visible blocks are consecutive in the pool (a block manager hands
a lone sequence blocks 0, 1, 2, ...) is read in place, as a view, on CPU where checking
the block table needs no device synchronisation; otherwise its blocks are gathered. Under
``torch.compile`` the table is never read on the host (a traced graph cannot depend on
it): blocks are always gathered.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tttv2.hw.kernels._masks import softcapped_attention
from tttv2.hw.kernels.native.paged_decode_attention import (
    native_paged_decode_attention,
    native_paged_decode_attention_applies,
)


def paged_decode_attention(
    q: torch.Tensor,
    k_pool: torch.Tensor,
    v_pool: torch.Tensor,
    block_tables: torch.Tensor,
    seq_lens: torch.Tensor,
    *,
    scale: float,
    sliding_window: int | None = None,
    softcap: float | None = None,
    max_seq_len: int | None = None,
) -> torch.Tensor:
    """``q [B, H, D]`` -> ``[B, H, D]`` in q's dtype.

    ``block_tables [B, W]`` int64 (padding entries may be anything valid, e.g. 0),
    ``seq_lens [B]`` int64 (>= 1). ``max_seq_len``, when the caller knows it as a Python
    int (``BatchMetadata.max_seq_len``), must equal ``seq_lens.max()`` and saves a
    device-to-host read.
    """
    _check_shapes(q, k_pool, v_pool)
    B, H, D = q.shape
    Hkv = k_pool.shape[2]
    if max_seq_len is None:
        max_seq_len = int(seq_lens.max()) if B > 1 else int(seq_lens[0])
    if B == 1:  # one sequence: [Hkv, S, D] keys, G queries per KV head, no mask
        k, v = _single_sequence(k_pool, v_pool, block_tables, max_seq_len, sliding_window)
        k, v, qg, mask = k.transpose(0, 1), v.transpose(0, 1), q.view(Hkv, H // Hkv, D), None
    else:  # [B, S, Hkv, D] -> [B, Hkv, S, D]; q [B, H, D] -> [B, Hkv, G, D]
        k, v, mask = _batch(k_pool, v_pool, block_tables, seq_lens, max_seq_len, sliding_window)
        k, v, qg = k.transpose(1, 2), v.transpose(1, 2), q.view(B, Hkv, H // Hkv, D)
    if k.dtype != q.dtype:
        k, v = k.to(q.dtype), v.to(q.dtype)
    if softcap is not None:
        out = softcapped_attention(qg, k, v, mask, scale, softcap).to(q.dtype)
    else:
        out = F.scaled_dot_product_attention(qg, k, v, attn_mask=mask, scale=scale)
    return out.reshape(B, H, D)


def cpu_paged_decode_attention(
    q: torch.Tensor,
    k_pool: torch.Tensor,
    v_pool: torch.Tensor,
    block_tables: torch.Tensor,
    seq_lens: torch.Tensor,
    *,
    scale: float,
    sliding_window: int | None = None,
    softcap: float | None = None,
    max_seq_len: int | None = None,
) -> torch.Tensor:
    """:func:`paged_decode_attention` for CPU tensors: the native kernel, which reads the
    blocks in place, where it is built; else the torch path above."""
    if torch.compiler.is_compiling():  # the opaque op, which runs this function eagerly
        return torch.ops.tttv2_hw.cpu_paged_decode_attention(
            q, k_pool, v_pool, block_tables, seq_lens, scale, sliding_window, softcap
        )
    _check_shapes(q, k_pool, v_pool)
    if block_tables.dim() == 2 and native_paged_decode_attention_applies(
        q, k_pool, v_pool, block_tables, seq_lens
    ):
        return native_paged_decode_attention(
            q,
            k_pool,
            v_pool,
            block_tables,
            seq_lens,
            scale=scale,
            sliding_window=sliding_window,
            softcap=softcap,
        )
    return paged_decode_attention(
        q, k_pool, v_pool, block_tables, seq_lens,
        scale=scale, sliding_window=sliding_window, softcap=softcap, max_seq_len=max_seq_len,
    )  # fmt: skip


def _check_shapes(q: torch.Tensor, k_pool: torch.Tensor, v_pool: torch.Tensor) -> None:
    """q ``[B, H, D]`` against pools ``[num_blocks, block_size, Hkv, D]`` with Hkv dividing H."""
    if q.dim() != 3 or k_pool.dim() != 4 or v_pool.shape != k_pool.shape:
        raise ValueError(
            "paged_decode_attention expects q [B,H,D] and k_pool, v_pool [num_blocks,block_size,Hkv,D]; "
            f"got q {tuple(q.shape)}, k_pool {tuple(k_pool.shape)}, v_pool {tuple(v_pool.shape)}"
        )
    if k_pool.shape[2] == 0 or q.shape[1] % k_pool.shape[2] or k_pool.shape[3] != q.shape[2]:
        raise ValueError(
            f"paged_decode_attention: q {tuple(q.shape)} does not fit KV heads/head_dim of pool {tuple(k_pool.shape)}"
        )


def _single_sequence(
    k_pool: torch.Tensor,
    v_pool: torch.Tensor,
    block_tables: torch.Tensor,
    length: int,
    window: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exactly the visible tokens of one sequence: ``[S, Hkv, D]``, no mask needed."""
    bs = k_pool.shape[1]
    start = max(0, length - window) if window is not None else 0
    first, last = start // bs, (length - 1) // bs
    lo = start - first * bs
    idx = block_tables[0, first : last + 1]
    if not torch.compiler.is_compiling():  # inside a graph the table is never read on the host
        b0 = _first_of_consecutive(idx)
        if b0 is not None:  # the visible blocks are consecutive in the pool: a view, no gather
            rows = slice(b0 * bs + lo, b0 * bs + lo + length - start)
            return k_pool.flatten(0, 1)[rows], v_pool.flatten(0, 1)[rows]
    k = k_pool.index_select(0, idx).flatten(0, 1)[lo : lo + length - start]
    v = v_pool.index_select(0, idx).flatten(0, 1)[lo : lo + length - start]
    return k, v


def _first_of_consecutive(idx: torch.Tensor) -> int | None:
    """The first block when the blocks ``idx`` follow each other in the pool (always so for
    one block, as in the contiguous layout), else None. Several blocks are only checked on
    CPU, where reading the table needs no device synchronisation."""
    if idx.shape[0] == 1:
        return int(idx[0])
    if idx.device.type != "cpu":
        return None
    blocks = idx.tolist()
    return blocks[0] if blocks == list(range(blocks[0], blocks[0] + len(blocks))) else None


def _batch(
    k_pool: torch.Tensor,
    v_pool: torch.Tensor,
    block_tables: torch.Tensor,
    seq_lens: torch.Tensor,
    max_len: int,
    window: int | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gathered keys/values ``[B, S, Hkv, D]`` and the mask ``[B, 1, 1, S]`` of visible tokens."""
    B = block_tables.shape[0]
    num_blocks, bs, Hkv, D = k_pool.shape
    lens = seq_lens.view(B, 1)
    if window is not None and window >= max_len:
        window = None
    if bs >= max_len:  # contiguous layout: each sequence's tokens start its (only) block
        idx = block_tables[:, 0]
        k = k_pool[:, :max_len].index_select(0, idx)
        v = v_pool[:, :max_len].index_select(0, idx)
        pos = torch.arange(max_len, device=k_pool.device).view(1, max_len)
    else:
        if window is None:
            cols = (
                torch.arange(-(-max_len // bs), device=block_tables.device)
                .view(1, -1)
                .expand(B, -1)
            )
        else:  # only the blocks covering each sequence's last `window` tokens
            span = min(-(-max_len // bs), (window - 1) // bs + 2)
            first = (lens - window).clamp(min=0) // bs
            cols = first + torch.arange(span, device=block_tables.device).view(1, -1)
        nb = cols.shape[1]
        idx = block_tables.gather(1, cols.clamp(max=block_tables.shape[1] - 1)).reshape(-1)
        k = k_pool.index_select(0, idx).view(B, nb * bs, Hkv, D)
        v = v_pool.index_select(0, idx).view(B, nb * bs, Hkv, D)
        pos = (cols.unsqueeze(-1) * bs + torch.arange(bs, device=cols.device)).view(
            cols.shape[0], nb * bs
        )
    visible = pos < lens
    if window is not None:
        visible = visible & (pos >= lens - window)
    return k, v, visible.view(B, 1, 1, -1)
