"""What the native kernels accept: dtype codes shared with ``dtypes.h``, inference only."""

from __future__ import annotations

import torch

#: ``dtypes.h``: 0 = float32, 1 = bfloat16, 2 = float16.
DTYPE_CODES = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}


def records_grad(*tensors: torch.Tensor | None) -> bool:
    """Whether autograd would record an op on these tensors. Native kernels (and the
    fp32 path of :func:`~tttv2.hw.kernels.linear.upcast_linear`, whose ``out=`` buffers
    autograd refuses) have no backward, so they serve inference only: ``no_grad``,
    ``inference_mode``, or tensors that do not require grad."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def native_allowed() -> bool:
    """False while torch.compile traces (it cannot see into a ctypes call)."""
    return not torch.compiler.is_compiling()
