"""Shared helpers: the causal/sliding-window mask and the fp32 soft-capped attention."""

from __future__ import annotations

import torch


def causal_window_mask(
    q_len: int, k_len: int, sliding_window: int | None, device: torch.device
) -> torch.Tensor:
    """``[q_len, k_len]`` bool, True where query ``i`` (at position ``k_len - q_len + i``)
    may attend key ``j``: ``j <= p`` and, with a window, ``j > p - sliding_window``."""
    q_pos = torch.arange(k_len - q_len, k_len, device=device).unsqueeze(1)
    k_pos = torch.arange(k_len, device=device).unsqueeze(0)
    allowed = k_pos <= q_pos
    if sliding_window is not None:
        allowed &= k_pos > q_pos - sliding_window
    return allowed


def softcapped_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float,
    softcap: float,
) -> torch.Tensor:
    """fp32 ``softmax(cap * tanh(q k^T * scale / cap)) v`` over the last two dims.

    ``q [..., Sq, D]`` and ``k, v [..., Sk, D]`` must broadcast; ``mask`` (True = attend)
    broadcasts against the scores ``[..., Sq, Sk]``. Returns fp32."""
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale
    scores = torch.tanh(scores / softcap) * softcap
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), v.float())
