"""Rotary position embedding applied to the first ``R`` channels of each head.

Half-split layout (Hugging Face ``rotate_half``): channel ``i`` pairs with ``i + R/2``.
Interleaved layout (Meta): channel ``2i`` pairs with ``2i + 1``. In both,
``out_a = a*cos - b*sin`` and ``out_b = b*cos + a*sin``; channels from ``R`` on pass through.
"""

from __future__ import annotations

import torch


def apply_rotary(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, *, interleaved: bool = False
) -> torch.Tensor:
    """``x [T, H, D]``, ``cos, sin [T, R/2]`` -> ``[T, H, D]`` in x's dtype.

    Arithmetic runs in the promoted dtype of x and cos (fp32 tables give fp32 math)."""
    if x.dim() != 3 or cos.dim() != 2 or cos.shape != sin.shape or cos.shape[0] != x.shape[0]:
        raise ValueError(
            f"apply_rotary expects x [T,H,D] and cos, sin [T,R/2]; got x {tuple(x.shape)}, "
            f"cos {tuple(cos.shape)}, sin {tuple(sin.shape)}"
        )
    half = cos.shape[1]
    rot = 2 * half
    if rot > x.shape[-1]:
        raise ValueError(f"apply_rotary: rotary dim {rot} exceeds head_dim {x.shape[-1]}")
    c, s = cos.unsqueeze(1), sin.unsqueeze(1)
    if interleaved:
        pairs = x[..., :rot].unflatten(-1, (half, 2))
        a, b = pairs[..., 0], pairs[..., 1]
        rotated = torch.stack((a * c - b * s, b * c + a * s), dim=-1).flatten(-2)
    else:
        a, b = x[..., :half], x[..., half:rot]
        rotated = torch.cat((a * c - b * s, b * c + a * s), dim=-1)
    rotated = rotated.to(x.dtype)
    if rot == x.shape[-1]:
        return rotated
    return torch.cat((rotated, x[..., rot:]), dim=-1)
