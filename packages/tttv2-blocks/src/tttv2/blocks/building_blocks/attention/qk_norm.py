"""QK-norm: RMSNorm over each head's ``head_dim`` channels of q or k (Qwen3, Gemma 3)."""

from __future__ import annotations

import torch
from torch import nn

from tttv2.hw import get_kernel


class HeadRMSNorm(nn.Module):
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last dim of ``x [T, heads, head_dim]``
    (``* (1 + weight)`` with ``unit_offset``, as Gemma 3, in fp32; the weight then starts at 0).

    ``weight [head_dim]`` is shared by all heads (Hugging Face ``q_norm.weight``), stored as
    the checkpoint stores it."""

    def __init__(
        self,
        head_dim: int,
        eps: float,
        device: torch.device | str | None = None,
        *,
        unit_offset: bool = False,
    ) -> None:
        super().__init__()
        init = torch.zeros if unit_offset else torch.ones
        self.weight = nn.Parameter(init(head_dim, device=device))
        self.eps = eps
        self.unit_offset = unit_offset
        self._rms_norm = get_kernel("rms_norm", device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._rms_norm(x, self.weight, self.eps, unit_offset=self.unit_offset)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}, unit_offset={self.unit_offset}"
