"""QK-norm: RMSNorm over each head's ``head_dim`` channels of q or k (Qwen3, Gemma 3)."""

from __future__ import annotations

import torch
from torch import nn

from tttv2.hw import get_kernel


class HeadRMSNorm(nn.Module):
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last dim of ``x [T, heads, head_dim]``.

    ``weight [head_dim]`` is shared by all heads (Hugging Face ``q_norm.weight``). A model
    whose checkpoint stores ``weight - 1`` (Gemma's unit offset) adds 1 when loading."""

    def __init__(self, head_dim: int, eps: float, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(head_dim, device=device))
        self.eps = eps
        self._rms_norm = get_kernel("rms_norm", device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._rms_norm(x, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"
