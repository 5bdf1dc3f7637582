"""Int8Linear: an ``nn.Linear`` held as int8 weights, symmetric per output channel.

The ``int8`` precision preset (:mod:`tttv2.hw.precision`) stores a projection as int8 codes
``weight [out, in]`` and one float32 ``scale [out]`` per output channel
(:func:`tttv2.hw.precision.quantize_int8`); the bias stays in its own dtype. The product is
tttv2-hw's ``int8_linear`` kernel: on x86 CPUs with AVX2, up to 16 rows (decode) read the
int8 codes directly (half the bytes of bf16); longer inputs (prefill) and other devices
dequantise the weight per call (``q * scale`` rounded to the input's dtype, the numbers
:func:`~tttv2.hw.precision.int8_round_trip` gives) and use the ``linear`` kernel.

Inference only: the codes and scales are parameters without gradients (so
:func:`~tttv2.blocks.weights.packing.pack_weights` packs them with the rest).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from tttv2.hw import get_kernel
from tttv2.hw.precision import dequantize_int8, quantize_int8


class Int8Linear(nn.Module):
    """``y = x @ (scale[:, None] * weight).T (+ bias)`` with int8 ``weight [out, in]``."""

    def __init__(
        self, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        if weight.dtype != torch.int8 or weight.dim() != 2:
            raise ValueError(
                f"Int8Linear: weight must be an int8 [out, in] tensor, got {tuple(weight.shape)} {weight.dtype}"
            )
        if scale.dtype != torch.float32 or tuple(scale.shape) != (weight.shape[0],):
            raise ValueError(
                f"Int8Linear: scale must be float32 [{weight.shape[0]}], got {tuple(scale.shape)} {scale.dtype}"
            )
        if bias is not None and tuple(bias.shape) != (weight.shape[0],):
            raise ValueError(
                f"Int8Linear: bias must be [{weight.shape[0]}], got {tuple(bias.shape)}"
            )
        self.out_features, self.in_features = weight.shape
        self.weight = nn.Parameter(weight.contiguous(), requires_grad=False)
        self.scale = nn.Parameter(scale.contiguous(), requires_grad=False)
        self.bias = (
            nn.Parameter(bias.detach().clone(), requires_grad=False) if bias is not None else None
        )
        self._kernels: dict[str, Callable[..., Any]] = {}  # device type -> int8_linear kernel

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        """``linear``'s weight quantised (its bias kept as it is)."""
        q, scale = quantize_int8(linear.weight.detach())
        bias = linear.bias.detach() if linear.bias is not None else None
        return cls(q, scale, bias)

    def dequantized(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The weight the codes stand for, ``[out, in]`` in ``dtype``."""
        return dequantize_int8(self.weight, self.scale, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = self._kernels.get(x.device.type)
        if kernel is None:
            kernel = self._kernels[x.device.type] = get_kernel("int8_linear", x.device)
        return kernel(x, self.weight, self.scale, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, int8"
