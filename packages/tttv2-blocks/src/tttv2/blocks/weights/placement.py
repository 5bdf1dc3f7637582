"""Where one checkpoint tensor (or one part of it) goes, and how it is derived on the way.

A :class:`Placement` names a target parameter and, optionally, a ``derive`` function from
the tensor as stored to the tensor the parameter receives (a transpose, one part of a
split). Shapes are checked before anything is read: ``derive`` is run on a ``meta`` tensor
of the stored shape, which computes the resulting shape without any data.

A placement whose ``derive`` is a transpose and/or one part of a split also carries a
:class:`StoredRegion`: the same derivation said structurally (which row or column range
of the stored tensor the target is, and whether it is stored transposed), so a loader can
read just a range of the stored tensor (tensor parallelism reads a rank's slice of a fused
q/k/v through the file's header offsets) instead of running ``derive`` on the whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

Derive = Callable[[torch.Tensor], torch.Tensor]

# safetensors dtype names torch has, for the meta tensor whose shape a derive is run on
_META_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}  # fmt: skip


@dataclass(frozen=True)
class StoredRegion:
    """Where a derived tensor lies in the tensor as stored: the stored tensor with its last
    two dimensions swapped when ``transposed`` (GPT-2's ``Conv1D`` stores ``[in, out]``),
    then part ``index`` along ``dim`` of that (``dim=None``: the whole): one of ``count``
    equal parts, or of parts of ``sizes`` when given (grouped-query q/k/v). ``dim`` counts
    in the target's dimensions, i.e. after the transpose, as :class:`~tttv2.blocks.weights.Split`
    does."""

    transposed: bool = False
    dim: int | None = None
    index: int = 0
    count: int = 1
    sizes: tuple[int, ...] | None = None

    def ranges(
        self, stored_shape: tuple[int, ...], cut: tuple[int, int, int] | None = None
    ) -> tuple[tuple[int, int], ...]:
        """``[start, stop)`` per dimension of the *target* (after the transpose) that it
        takes; with ``cut = (dim, start, stop)`` only rows ``start:stop`` of the target's
        ``dim`` (a rank's shard of it). Raises ValueError when the stored shape does not
        divide as the region says."""
        shape = list(stored_shape)
        ndim = len(shape)
        if self.transposed:
            if ndim < 2:
                raise ValueError(f"cannot transpose a tensor of shape {tuple(stored_shape)}")
            shape[-2], shape[-1] = shape[-1], shape[-2]
        ranges = [(0, n) for n in shape]
        if self.dim is not None:
            d = self._axis(self.dim, ndim)
            length = shape[d]
            if self.sizes is None:
                if length % self.count:
                    raise ValueError(
                        f"cannot cut dim {self.dim} of size {length} into {self.count} equal parts"
                    )
                size = length // self.count
                start = self.index * size
            else:
                if sum(self.sizes) != length:
                    raise ValueError(
                        f"sizes {list(self.sizes)} do not add up to dim {self.dim} of size {length}"
                    )
                start, size = sum(self.sizes[: self.index]), self.sizes[self.index]
            ranges[d] = (start, start + size)
        if cut is not None:
            d = self._axis(cut[0], ndim)
            base, end = ranges[d]
            if not 0 <= cut[1] <= cut[2] <= end - base:
                raise ValueError(f"rows {cut[1]}:{cut[2]} of dim {cut[0]} of size {end - base}")
            ranges[d] = (base + cut[1], base + cut[2])
        return tuple(ranges)

    def shape(self, stored_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The target's shape from a stored tensor of ``stored_shape``."""
        return tuple(stop - start for start, stop in self.ranges(stored_shape))

    def stored_index(
        self, stored_shape: tuple[int, ...], cut: tuple[int, int, int] | None = None
    ) -> tuple[slice, ...]:
        """The index into the *stored* tensor (a torch tensor or safetensors' ``get_slice``
        object, which then reads only those bytes) selecting the region (or its ``cut``, as
        in :meth:`ranges`); transpose what it selects when :attr:`transposed`."""
        ranges = list(self.ranges(stored_shape, cut))
        if self.transposed:
            ranges[-2], ranges[-1] = ranges[-1], ranges[-2]
        return tuple(slice(start, stop) for start, stop in ranges)

    def take(self, stored: Any, cut: tuple[int, int, int] | None = None) -> torch.Tensor:
        """The region (or its ``cut``) of ``stored`` as the target receives it."""
        shape = (
            tuple(stored.shape) if isinstance(stored, torch.Tensor) else tuple(stored.get_shape())
        )
        value = stored[self.stored_index(shape, cut)]
        return value.transpose(-2, -1) if self.transposed else value

    @staticmethod
    def _axis(dim: int, ndim: int) -> int:
        if not -ndim <= dim < ndim:
            raise ValueError(f"dim {dim} is out of range for a tensor of {ndim} dimensions")
        return dim % ndim


@dataclass(frozen=True)
class Placement:
    """One checkpoint tensor, or one part of it, going to the parameter ``target``.

    ``derive`` maps the tensor as stored to what ``target`` receives (``None``: the tensor
    itself); ``how`` says in words what it does (``"transpose"``, ``"part 2 of 3 along dim
    0"``), for error messages. ``region`` says the same as ``derive`` structurally when it
    is a transpose and/or a part of a split (``None``: no derive, or an opaque one)."""

    target: str
    derive: Derive | None = None
    how: str = ""
    region: StoredRegion | None = None

    @property
    def is_structural(self) -> bool:
        """Whether the target is a range of the stored tensor (possibly transposed) that a
        loader can read by itself: no derive, or one :attr:`region` describes."""
        return self.derive is None or self.region is not None

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
