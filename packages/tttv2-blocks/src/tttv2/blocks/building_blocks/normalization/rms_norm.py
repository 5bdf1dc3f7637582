"""RMSNorm: ``x / sqrt(mean(x^2) + eps) * w`` over the last axis, computed in float32.

With ``unit_offset`` the scale is ``(1 + w)`` (Gemma stores ``w`` around zero); the
weight then starts at zero so a fresh module scales by one. The whole computation,
including the multiplication by the weight, runs in float32 and the result is cast back
to the input's dtype (Gemma's order; Llama casts before multiplying, which differs by at
most one rounding in low precision and not at all in float32).

The arithmetic is tttv2-hw's ``rms_norm`` kernel for the input's device.
"""

from __future__ import annotations

from typing import Any

import torch

from tttv2.core.specs import NormSpec
from tttv2.hw import get_kernel


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
        self._kernels: dict[str, Any] = {}  # device type -> rms_norm kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.spec.dim:
            raise ValueError(f"RMSNorm(dim={self.spec.dim}) got input of shape {tuple(x.shape)}")
        kernel = self._kernels.get(x.device.type)
        if kernel is None:
            kernel = self._kernels[x.device.type] = get_kernel("rms_norm", x.device)
        return kernel(x, self.weight, self.eps, unit_offset=self.unit_offset)

    def extra_repr(self) -> str:
        return f"{self.spec.dim}, eps={self.eps}, unit_offset={self.unit_offset}"
