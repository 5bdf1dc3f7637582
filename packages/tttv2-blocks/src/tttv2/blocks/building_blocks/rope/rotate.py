"""Rotating channel pairs of a ``[T, H, D]`` tensor by per-token angles.

``cos``/``sin`` are ``[T, R/2]`` (R = rotary dim <= D, even). Channels ``R..D`` pass
through untouched (partial rotary). Two layouts pair channels differently:

* half-split (Hugging Face ``rotate_half``): channel ``i`` with ``i + R/2``;
* interleaved (Meta): channel ``2i`` with ``2i + 1``.

Pair ``(a, b)`` with angle index ``i`` becomes ``(a cos - b sin, b cos + a sin)``.
Arithmetic happens in ``x``'s dtype (as Hugging Face does), so cast ``cos``/``sin`` first.
"""

from __future__ import annotations

import torch


def rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, *, interleaved: bool = False) -> torch.Tensor:
    rotary_dim = 2 * cos.shape[-1]
    cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)  # broadcast over heads
    x_rot, x_pass = x[..., :rotary_dim], x[..., rotary_dim:]
    if interleaved:
        pairs = x_rot.unflatten(-1, (rotary_dim // 2, 2))
        a, b = pairs[..., 0], pairs[..., 1]
        rotated = torch.stack((a * cos - b * sin, b * cos + a * sin), dim=-1).flatten(-2)
    else:
        a, b = x_rot[..., : rotary_dim // 2], x_rot[..., rotary_dim // 2 :]
        rotated = torch.cat((a * cos - b * sin, b * cos + a * sin), dim=-1)
    if x_pass.shape[-1] == 0:
        return rotated
    return torch.cat((rotated, x_pass), dim=-1)
