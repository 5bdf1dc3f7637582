"""KernelLinear: apply an ``nn.Linear`` with tttv2-hw's ``linear`` kernel.

Blocks keep their projections as ``nn.Linear`` (Hugging Face layout, checkpoints copy
1:1) but compute them with the device's ``linear`` kernel, which on CPU turns a single
token into a matrix-vector product and long half-precision inputs into fp32 products
(see :mod:`tttv2.hw.kernels.linear`). A layer that is not a plain ``nn.Linear`` (a
subclass, e.g. a quantised or adapter layer) or that carries forward hooks is called as a
module, so replacing or observing a projection keeps working.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from tttv2.core.torch_internals import has_forward_hooks
from tttv2.hw import get_kernel


class KernelLinear:
    """``runner(layer, x)`` == ``layer(x)``, computed by the kernel for ``x``'s device type
    (looked up once per device type)."""

    __slots__ = ("_kernels",)

    def __init__(self) -> None:
        self._kernels: dict[str, Callable[..., Any]] = {}

    def __call__(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if type(layer) is not nn.Linear or has_forward_hooks(layer):
            return layer(x)
        kernel = self._kernels.get(x.device.type)
        if kernel is None:
            kernel = self._kernels[x.device.type] = get_kernel("linear", x.device)
        return kernel(x, layer.weight, layer.bias)
