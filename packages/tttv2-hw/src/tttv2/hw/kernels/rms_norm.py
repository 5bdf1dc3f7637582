"""RMSNorm: ``x / sqrt(mean(x^2) + eps) * w`` (``* (1 + w)`` with ``unit_offset``), in fp32.

One ``torch.nn.functional.rms_norm`` call: it accumulates half-precision inputs in fp32,
multiplies by the weight in fp32 and rounds once, which is the order of the operations
below, bit for bit (``x.float()``, ``pow(2).mean``, ``+ eps``, ``rsqrt``, ``* w``, cast).
A decode step runs two norms per layer, so one fused call instead of eight elementwise
ones is a measurable part of a small model's step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tttv2.hw.kernels.native.rms_norm import native_rms_norm, native_rms_norm_applies


def rms_norm(
    x: torch.Tensor, weight: torch.Tensor, eps: float, *, unit_offset: bool = False
) -> torch.Tensor:
    """Normalise over the last dim with fp32 accumulation; the result has x's dtype."""
    if weight.shape[-1] != x.shape[-1] or weight.dim() != 1:
        raise ValueError(
            f"rms_norm: weight {tuple(weight.shape)} does not match x {tuple(x.shape)} (need [dim])"
        )
    if unit_offset:
        return F.rms_norm(x.float(), (x.shape[-1],), weight.float() + 1.0, eps).to(x.dtype)
    if weight.dtype != x.dtype:
        return F.rms_norm(x.float(), (x.shape[-1],), weight.float(), eps).to(x.dtype)
    return F.rms_norm(x, (x.shape[-1],), weight, eps)


def cpu_rms_norm(
    x: torch.Tensor, weight: torch.Tensor, eps: float, *, unit_offset: bool = False
) -> torch.Tensor:
    """:func:`rms_norm` for CPU tensors: the native kernel where it is built, else torch."""
    if torch.compiler.is_compiling():  # the opaque op, which runs this function eagerly
        return torch.ops.tttv2_hw.cpu_rms_norm(x, weight, eps, unit_offset)
    if native_rms_norm_applies(x, weight):
        return native_rms_norm(x, weight, eps, unit_offset=unit_offset)
    return rms_norm(x, weight, eps, unit_offset=unit_offset)
