"""Where one checkpoint tensor (or one part of it) goes, and how it is derived on the way.

A :class:`Placement` names a target parameter and, optionally, a ``derive`` function from
the tensor as stored to the tensor the parameter receives (a transpose, one part of a
split). Shapes are checked before anything is read: ``derive`` is run on a ``meta`` tensor
of the stored shape, which computes the resulting shape without any data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Derive = Callable[[torch.Tensor], torch.Tensor]

# safetensors dtype names torch has, for the meta tensor whose shape a derive is run on
_META_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}  # fmt: skip


@dataclass(frozen=True)
class Placement:
    """One checkpoint tensor, or one part of it, going to the parameter ``target``.

    ``derive`` maps the tensor as stored to what ``target`` receives (``None``: the tensor
    itself); ``how`` says in words what it does (``"transpose"``, ``"part 2 of 3 along dim
    0"``), for error messages."""

    target: str
    derive: Derive | None = None
    how: str = ""

    def tensor(self, stored: torch.Tensor) -> torch.Tensor:
        return stored if self.derive is None else self.derive(stored)

    def shape(self, stored_shape: tuple[int, ...], stored_dtype: str = "F32") -> tuple[int, ...]:
        """The shape ``target`` receives from a stored tensor of ``stored_shape`` (computed
        on the meta device: nothing is read or allocated). Raises what ``derive`` raises."""
        if self.derive is None:
            return tuple(stored_shape)
        meta = torch.empty(
            stored_shape, dtype=_META_DTYPES.get(stored_dtype, torch.float32), device="meta"
        )
        return tuple(self.derive(meta).shape)
