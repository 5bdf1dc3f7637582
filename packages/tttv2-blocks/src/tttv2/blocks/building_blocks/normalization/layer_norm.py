"""LayerNorm: ``(x - mean) / sqrt(var + eps) * w (+ b)`` over the last axis.

Uses ``torch.nn.functional.layer_norm`` (which accumulates in float32 for half types),
like ``torch.nn.LayerNorm`` in Hugging Face models. ``unit_offset`` scales by ``1 + w``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from tttv2.core.specs import NormSpec


class LayerNorm(torch.nn.Module):
    """Layer norm of ``spec`` (``norm_type="layer"``); parameters ``weight [dim]`` and,
    when ``spec.bias``, ``bias [dim]`` (otherwise ``bias`` is ``None``)."""

    def __init__(self, spec: NormSpec, device: Any = None, execution_strategy: Any = None) -> None:
        super().__init__()
        if not isinstance(spec, NormSpec) or spec.norm_type != "layer":
            raise TypeError(f"LayerNorm needs a NormSpec with norm_type='layer', got {spec!r}")
        self.spec = spec
        self.eps = spec.eps
        self.unit_offset = spec.unit_offset
        init = torch.zeros if spec.unit_offset else torch.ones
        self.weight = torch.nn.Parameter(init(spec.dim, device=device))
        self.bias = torch.nn.Parameter(torch.zeros(spec.dim, device=device)) if spec.bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.spec.dim:
            raise ValueError(f"LayerNorm(dim={self.spec.dim}) got input of shape {tuple(x.shape)}")
        weight = 1.0 + self.weight if self.unit_offset else self.weight
        return F.layer_norm(x, (self.spec.dim,), weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.spec.dim}, eps={self.eps}, bias={self.bias is not None}, unit_offset={self.unit_offset}"
