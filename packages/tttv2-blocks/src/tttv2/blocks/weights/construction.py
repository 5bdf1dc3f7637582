"""Building a model directly in the dtype its weights will be loaded in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def default_dtype(dtype: torch.dtype | None) -> Iterator[None]:
    """Inside: floating-point parameters created without an explicit dtype are ``dtype``.

    Build a model under it before :func:`~tttv2.blocks.weights.load_weights`, so a
    bfloat16 model never exists in float32 first (which would take twice the memory of
    the weights). ``None`` changes nothing."""
    if dtype is None:
        yield
        return
    if not dtype.is_floating_point:
        raise ValueError(f"default_dtype needs a floating-point dtype, got {dtype}")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
