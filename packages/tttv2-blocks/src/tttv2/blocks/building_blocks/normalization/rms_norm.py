"""RMSNorm: ``x / sqrt(mean(x^2) + eps) * w`` over the last axis, computed in float32.

With ``unit_offset`` the scale is ``(1 + w)`` (Gemma stores ``w`` around zero); the
weight then starts at zero so a fresh module scales by one. The whole computation,
including the multiplication by the weight, runs in float32 and the result is cast back
to the input's dtype (Gemma's order; Llama casts before multiplying, which differs by at
most one rounding in low precision and not at all in float32).
"""

from __future__ import annotations

from typing import Any

import torch
from tttv2.core.specs import NormSpec


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, *, unit_offset: bool = False) -> torch.Tensor:
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    scale = weight.float()
    if unit_offset:
        scale = 1.0 + scale
    return (h * scale).to(x.dtype)


class RMSNorm(torch.nn.Module):
    """Root-mean-square norm of ``spec`` (``norm_type="rms"``); parameter ``weight [dim]``.
    Takes ``[..., dim]`` (``[T, hidden]`` in a model, ``[T, heads, head_dim]`` for q/k norms)."""

    def __init__(self, spec: NormSpec, device: Any = None, execution_strategy: Any = None) -> None:
        super().__init__()
        if not isinstance(spec, NormSpec) or spec.norm_type != "rms":
            raise TypeError(f"RMSNorm needs a NormSpec with norm_type='rms', got {spec!r}")
        self.spec = spec
        self.eps = spec.eps
        self.unit_offset = spec.unit_offset
        init = torch.zeros if spec.unit_offset else torch.ones
        self.weight = torch.nn.Parameter(init(spec.dim, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.spec.dim:
            raise ValueError(f"RMSNorm(dim={self.spec.dim}) got input of shape {tuple(x.shape)}")
        return rms_norm(x, self.weight, self.eps, unit_offset=self.unit_offset)

    def extra_repr(self) -> str:
        return f"{self.spec.dim}, eps={self.eps}, unit_offset={self.unit_offset}"
