"""Readable reference for normalization (the math of ``NormSpec``), in float64.

Weights by their Hugging Face names: ``weight`` and, for LayerNorm with bias, ``bias``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from tttv2.core.specs import NormSpec


def reference_rms_norm(
    x: torch.Tensor, weight: torch.Tensor, eps: float, unit_offset: bool = False
) -> torch.Tensor:
    x = x.detach().to(torch.float64)
    scale = weight.detach().to(torch.float64)
    if unit_offset:
        scale = 1 + scale
    mean_square = (x * x).mean(dim=-1, keepdim=True)
    return x / torch.sqrt(mean_square + eps) * scale


def reference_layer_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    eps: float,
    unit_offset: bool = False,
) -> torch.Tensor:
    x = x.detach().to(torch.float64)
    scale = weight.detach().to(torch.float64)
    if unit_offset:
        scale = 1 + scale
    mean = x.mean(dim=-1, keepdim=True)
    variance = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # biased, as LayerNorm
    y = (x - mean) / torch.sqrt(variance + eps) * scale
    if bias is not None:
        y = y + bias.detach().to(torch.float64)
    return y


def reference_norm(
    x: torch.Tensor, weights: Mapping[str, torch.Tensor], spec: NormSpec
) -> torch.Tensor:
    """The norm ``spec`` describes, with ``weights`` from its ``state_dict()``."""
    if spec.norm_type == "rms":
        return reference_rms_norm(x, weights["weight"], spec.eps, spec.unit_offset)
    return reference_layer_norm(
        x, weights["weight"], weights.get("bias"), spec.eps, spec.unit_offset
    )
