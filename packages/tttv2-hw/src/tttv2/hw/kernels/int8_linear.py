"""The ``int8_linear`` kernel op: ``x @ (scale * weight).T (+ bias)`` for int8 weights.

Weight-only int8 (the ``int8`` precision preset, :func:`tttv2.hw.precision.quantize_int8`):
``weight [out, in]`` holds int8 codes, ``scale [out]`` one float32 per output channel,
``bias`` (optional) and ``x`` the activation dtype; the result has ``x``'s dtype.

* ``torch`` (any device): the weight is dequantised per call (``q * scale`` in float32,
  rounded to ``x``'s dtype: the numbers :func:`~tttv2.hw.precision.int8_round_trip` gives)
  and multiplied by the device's ``linear``. Prefill runs this way on every device.
* ``torch-cpu``: up to 16 rows (decode) on x86 CPUs with AVX2, the native few-row kernel
  (``native/skinny_linear.c``) reads the int8 codes directly, widening them in registers
  and multiplying each output's float32 sum by its scale once: half the bytes of bf16.
  Elsewhere (more rows, no AVX2, ``cpu:generic`` profile, ``TTTV2_NATIVE_KERNELS=0``) the
  dequantising path above, with :func:`cpu_linear`; :func:`int8_decode_unavailable` says
  why the native path is not used, and the first such product logs it once.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from tttv2.hw.kernels.linear import cpu_linear
from tttv2.hw.kernels.native import NativeKernelUnavailable, records_grad
from tttv2.hw.kernels.native.skinny_linear import (
    SKINNY_MAX_ROWS,
    skinny_int8_kernel,
    skinny_int8_linear,
    skinny_int8_linear_applies,
)
from tttv2.hw.precision.policy import dequantize_int8

log = logging.getLogger(__name__)

SIGNATURE = "(x [..., in], weight int8 [out, in], scale float32 [out], bias [out] | None = None) -> [..., out]"

_warned: set[str] = set()


def _check(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor) -> None:
    if (
        weight.dtype != torch.int8
        or weight.dim() != 2
        or x.dim() == 0
        or x.shape[-1] != weight.shape[1]
        or tuple(scale.shape) != (weight.shape[0],)
        or scale.dtype != torch.float32
    ):
        raise ValueError(
            f"int8_linear: x {tuple(x.shape)}, weight {tuple(weight.shape)} {weight.dtype}, scale "
            f"{tuple(scale.shape)} {scale.dtype}: need x [..., in], int8 weight [out, in], float32 scale [out]"
        )


def int8_linear(
    x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """The generic kernel: dequantise per call, then ``F.linear`` (any device)."""
    _check(x, weight, scale)
    return F.linear(x, dequantize_int8(weight, scale, x.dtype), bias)


def int8_decode_unavailable() -> str | None:
    """Why the native int8 decode product cannot run in this process (None: it can)."""
    built = skinny_int8_kernel()
    if isinstance(built, NativeKernelUnavailable):
        return f"native int8 kernel unavailable: {built}"
    return None


def cpu_int8_linear(
    x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`int8_linear` for CPU tensors: the native kernel for up to 16 rows, else the
    weight dequantised per call and :func:`cpu_linear`."""
    _check(x, weight, scale)
    rows = x.numel() // weight.shape[1] if weight.shape[1] else 0
    if not torch.compiler.is_compiling() and skinny_int8_linear_applies(
        x, weight, scale, bias, rows
    ):
        return skinny_int8_linear(x, weight, scale, bias)
    if 0 < rows <= SKINNY_MAX_ROWS and not records_grad(x, bias):
        reason = int8_decode_unavailable()
        if reason is not None and reason not in _warned:
            _warned.add(reason)
            log.warning("int8 weights are dequantised per call at decode (%s)", reason)
    return cpu_linear(x, dequantize_int8(weight, scale, x.dtype), bias)
