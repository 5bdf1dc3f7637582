"""Building a model for loading: directly in the dtype its weights will be loaded in, and
without the random initialisation the checkpoint is about to overwrite."""

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


#: The random initialisers of ``torch.nn.init`` that :func:`no_init_weights` turns off
#: (fills such as ``ones_``/``zeros_`` are cheap and stay).
RANDOM_INITIALISERS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "xavier_uniform_",
    "xavier_normal_",
    "orthogonal_",
    "sparse_",
)


@contextmanager
def no_init_weights() -> Iterator[None]:
    """Inside: ``torch.nn.init``'s random initialisers leave tensors as allocated, so
    building a model costs its allocation, not a random draw per weight (on a 2-core CPU,
    building and loading the Llama-3.2-1B shape in bf16 took 21.3 s with the draw, 10.1 s
    without).

    Use it only to build a model whose every parameter :func:`load_weights` then fills
    (it reports a missing tensor by name before copying anything); until then the
    parameters hold whatever the allocator gave. TTTv2 blocks initialise through
    ``torch.nn.init``, so they are covered, as is ``torch.nn.Linear``. The patch is
    process-wide for the duration (as ``transformers``' context of the same name): do not
    build another model on another thread meanwhile."""
    saved = {name: getattr(torch.nn.init, name) for name in RANDOM_INITIALISERS}

    def keep(tensor: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        return tensor

    for name in saved:
        setattr(torch.nn.init, name, keep)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(torch.nn.init, name, function)
