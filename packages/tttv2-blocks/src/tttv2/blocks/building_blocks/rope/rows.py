"""The rotary cos/sin rows of a forward pass, looked up once for all its layers.

Every attention layer of a pass rotates by the same positions with the same RoPE spec.
Inside :func:`pass_scope` (the transformer stack opens one per forward pass) the rows
:meth:`RotaryEmbedding.cos_sin` returns for a ``positions`` tensor are remembered and
reused by the following layers; a pass never changes its positions, so the rows stay
right. Outside a scope every call looks the rows up. On a small model's decode step this
removes a table lookup and two gathers from every layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch

from tttv2.blocks.building_blocks.rope.rotary_embedding import RotaryEmbedding

# the last lookup of the current pass: [(positions, spec, device, dtype, seq_len, cos, sin)]
_pass: ContextVar[list[tuple[Any, ...] | None] | None] = ContextVar("tttv2_rope_rows", default=None)


@contextmanager
def pass_scope() -> Iterator[None]:
    """Remember cos/sin rows for the duration of one forward pass."""
    token = _pass.set([None])
    try:
        yield
    finally:
        _pass.reset(token)


def pass_cos_sin(
    rotary: RotaryEmbedding,
    positions: torch.Tensor,
    device: torch.device,
    dtype: torch.dtype,
    seq_len: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``rotary.cos_sin(positions, device, dtype, seq_len)``, shared by a pass's layers."""
    slot = _pass.get()
    if slot is None:
        return rotary.cos_sin(positions, device, dtype, seq_len)
    last, spec = slot[0], rotary.spec
    if (
        last is not None
        and last[0] is positions
        and (last[1] is spec or last[1] == spec)
        and last[2] == device
        and last[3] == dtype
        and last[4] == seq_len
    ):
        return last[5], last[6]
    cos, sin = rotary.cos_sin(positions, device, dtype, seq_len)
    slot[0] = (positions, spec, device, dtype, seq_len, cos, sin)
    return cos, sin
