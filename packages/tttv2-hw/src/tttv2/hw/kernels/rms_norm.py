"""RMSNorm: ``x / sqrt(mean(x^2) + eps) * w`` (``* (1 + w)`` with ``unit_offset``), in fp32."""

from __future__ import annotations

import torch


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, *, unit_offset: bool = False) -> torch.Tensor:
    """Normalise over the last dim with fp32 accumulation; the result has x's dtype."""
    if weight.shape[-1] != x.shape[-1] or weight.dim() != 1:
        raise ValueError(f"rms_norm: weight {tuple(weight.shape)} does not match x {tuple(x.shape)} (need [dim])")
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    w = weight.float()
    if unit_offset:
        w = w + 1.0
    return (y * w).to(x.dtype)
