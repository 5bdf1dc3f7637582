"""TensorSlice: which part of one checkpoint tensor a rank holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class TensorSlice:
    """Rows ``start:stop`` of dimension ``dim`` (``dim=None``: the whole tensor, replicated
    on every rank). ``full`` is that dimension's size in the checkpoint."""

    dim: int | None
    start: int = 0
    stop: int = 0
    full: int = 0

    @classmethod
    def replicated(cls) -> TensorSlice:
        return cls(None)

    @property
    def is_replicated(self) -> bool:
        return self.dim is None

    @property
    def size(self) -> int:
        return self.stop - self.start

    def shape(self, full_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The rank's shape of a tensor whose checkpoint shape is ``full_shape``."""
        if self.dim is None:
            return tuple(full_shape)
        return tuple(self.size if i == self.dim else n for i, n in enumerate(full_shape))

    def check(self, name: str, full_shape: tuple[int, ...]) -> None:
        """Raise ValueError when the checkpoint tensor does not have the planned size."""
        if self.dim is None:
            return
        if self.dim >= len(full_shape) or full_shape[self.dim] != self.full:
            raise ValueError(
                f"tensor parallel: {name} has shape {tuple(full_shape)}, the plan expects dim {self.dim} of size {self.full}"
            )

    def index(self, ndim: int) -> tuple[slice, ...]:
        """The index that selects the slice from a tensor (or a safetensors slice) of ``ndim`` dims."""
        if self.dim is None:
            return tuple(slice(None) for _ in range(ndim))
        return tuple(
            slice(self.start, self.stop) if i == self.dim else slice(None) for i in range(ndim)
        )

    def take(self, tensor: Any) -> Any:
        """The rank's part of ``tensor`` (a torch tensor or safetensors' ``get_slice`` object:
        the latter reads only those bytes)."""
        if self.dim is None and isinstance(tensor, torch.Tensor):
            return tensor
        ndim = tensor.dim() if isinstance(tensor, torch.Tensor) else len(tensor.get_shape())
        return tensor[self.index(ndim)]


def even_range(total: int, parts: int, index: int) -> tuple[int, int]:
    """``[start, stop)`` of part ``index`` when ``total`` splits into ``parts`` parts of
    ``ceil(total / parts)`` (the last ones shorter or empty)."""
    size = -(-total // parts)
    return min(total, index * size), min(total, (index + 1) * size)
