"""Causal attention of a block of new queries against keys that end at the same position.

Covers one-shot prefill (``Sq == Sk``), chunked prefill against cached context and
speculative verification (``Sq < Sk``): query ``i`` sits at absolute position
``Sk - Sq + i``.

With a sliding window narrower than the keys, the queries are taken in blocks of
:func:`window_query_block` rows and each block attends only to the keys its window can
reach (at most ``block + window - 1`` of them) with a ``[block, block + window - 1]`` mask,
so memory and work grow with ``Sq x window`` instead of ``Sq x Sk``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tttv2.hw.kernels._masks import causal_window_mask, softcapped_attention

#: ``scaled_dot_product_attention(enable_gqa=...)`` exists from torch 2.5 on.
SDPA_HAS_GQA = tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 5)

#: Fewest and most query rows per block of windowed attention (see :func:`window_query_block`).
WINDOW_BLOCK_MIN = 128
WINDOW_BLOCK_MAX = 512


def window_query_block(sliding_window: int) -> int:
    """Query rows per block of windowed prefill: the window, within
    ``[WINDOW_BLOCK_MIN, WINDOW_BLOCK_MAX]``. A block computes ``block + window - 1`` scores
    per row where its rows need at most ``window``: the cap keeps that overhead under
    ``block / window`` for wide windows and the floor keeps the per-call cost of narrow
    windows small."""
    return max(WINDOW_BLOCK_MIN, min(sliding_window, WINDOW_BLOCK_MAX))


def prefill_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    scale: float,
    sliding_window: int | None = None,
    softcap: float | None = None,
) -> torch.Tensor:
    """``q [B, H, Sq, D]``, ``k, v [B, Hkv, Sk, D]`` (``Sk >= Sq``, ``H % Hkv == 0``) ->
    ``[B, H, Sq, D]`` in q's dtype.

    Causal; with ``sliding_window`` a query at position p sees keys ``p - window + 1 .. p``
    (computed block by block: memory proportional to ``Sq x window``, never ``Sq x Sk``);
    ``softcap`` applies ``cap * tanh(scores / cap)`` before the softmax (computed in fp32).
    """
    _check(q, k, v)
    Sk = k.shape[2]
    if k.dtype != q.dtype:
        k, v = k.to(q.dtype), v.to(q.dtype)
    if sliding_window is None or sliding_window >= Sk:
        return _attend(q, k, v, scale, None, softcap)
    return _attend_windowed(q, k, v, scale, sliding_window, softcap)


def _attend_windowed(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    window: int,
    softcap: float | None,
) -> torch.Tensor:
    """Query blocks in turn, each against only the keys its rows can see. A block's queries
    are the last rows of its key span, so each block is the same causal problem as the
    whole, on ``block`` queries and at most ``block + window - 1`` keys."""
    Sq, Sk = q.shape[2], k.shape[2]
    first = Sk - Sq  # absolute position of query 0
    block = window_query_block(window)
    out = torch.empty_like(q)
    for a in range(0, Sq, block):
        b = min(a + block, Sq)
        k_start, k_end = max(0, first + a - window + 1), first + b
        span_window = window if window < k_end - k_start else None
        out[:, :, a:b] = _attend(
            q[:, :, a:b],
            k[:, :, k_start:k_end],
            v[:, :, k_start:k_end],
            scale,
            span_window,
            softcap,
        )
    return out


def _attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    window: int | None,
    softcap: float | None,
) -> torch.Tensor:
    """One call over all of ``q`` and ``k``; ``window`` is None or narrower than ``Sk``."""
    B, H, Sq, D = q.shape
    Hkv, Sk = k.shape[1], k.shape[2]
    one_shot_causal = Sq == Sk and window is None
    mask = None if one_shot_causal else causal_window_mask(Sq, Sk, window, q.device)

    if softcap is not None:
        if mask is None:
            mask = causal_window_mask(Sq, Sk, None, q.device)
        group = H // Hkv  # broadcast KV heads over their query group: no copy of k or v
        out = softcapped_attention(
            q.reshape(B, Hkv, group, Sq, D), k.unsqueeze(2), v.unsqueeze(2), mask, scale, softcap
        )
        return out.view(B, H, Sq, D).to(q.dtype)

    if H != Hkv and not SDPA_HAS_GQA:  # pragma: no cover - torch < 2.5
        k = k.repeat_interleave(H // Hkv, dim=1)
        v = v.repeat_interleave(H // Hkv, dim=1)
    gqa = {"enable_gqa": True} if H != Hkv and SDPA_HAS_GQA else {}
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, is_causal=one_shot_causal, scale=scale, **gqa
    )


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.shape != k.shape:
        raise ValueError(
            f"prefill_attention expects q [B,H,Sq,D] and k, v [B,Hkv,Sk,D] of equal shape; "
            f"got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    (B, H, Sq, D), (Bk, Hkv, Sk, Dk) = q.shape, k.shape
    if B != Bk or D != Dk:
        raise ValueError(
            f"prefill_attention: q {tuple(q.shape)} and k {tuple(k.shape)} differ in batch or head_dim"
        )
    if H % Hkv:
        raise ValueError(f"prefill_attention: {H} query heads is not a multiple of {Hkv} KV heads")
    if Sk < Sq:
        raise ValueError(
            f"prefill_attention: {Sk} keys for {Sq} queries; need at least as many keys as queries"
        )
