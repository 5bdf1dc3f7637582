"""Load one rank's shard of a safetensors checkpoint, reading only its slices.

Each tensor is opened with ``safetensors``' ``safe_open(...).get_slice(name)``, which knows
the tensor's byte range from the file header; indexing it copies just the rank's rows or
columns (the file is memory-mapped, so the other ranks' parts are never read into this
process's tensors). A rank therefore holds about ``1/world_size`` of the weights
(replicated tensors, norms and biases of row-parallel projections, aside).

Names: checkpoint names go through ``rename`` (a model's mapping from its checkpoint names
to module names, e.g. ``model.layers.0.self_attn.q_proj.weight`` ->
``layers.0.attention.q_proj.weight``; returning None skips a tensor). It may also return
:class:`~tttv2.blocks.weights.Placement` s whose derivation is structural (a
:class:`~tttv2.blocks.weights.StoredRegion`: a row or column range of the stored tensor,
maybe stored transposed): a fused q/k/v or gate/up, GPT-2's transposed ``Conv1D``. Then
the rank reads only its rows of each part (each part's shard is one range of the stored
tensor), transposing what it read when the tensor is stored transposed. The plan
(:meth:`~tttv2.blocks.parallel.plan.ModelShardPlan.tensors`) says which slice of each module
tensor the rank holds (None: another rank's tensor, skipped); tensors it does not name are
replicated. Every slice's checkpoint
shape is checked against the plan and the module; missing and unexpected tensors are
reported by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import safe_open

from tttv2.blocks.parallel.slices import TensorSlice
from tttv2.core.errors import InputError

if TYPE_CHECKING:  # only the type: the weights package imports this one at run time
    from tttv2.blocks.weights.placement import Placement, StoredRegion

_DTYPE_BYTES = {
    "F64": 8,
    "I64": 8,
    "U64": 8,
    "F32": 4,
    "I32": 4,
    "U32": 4,
    "F16": 2,
    "BF16": 2,
    "I16": 2,
    "U16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}


class ShardLoadError(InputError, ValueError):
    """The checkpoint does not fit the sharded model (missing, unexpected or mis-shaped)."""


@dataclass(frozen=True)
class ShardLoadReport:
    """``tensors`` loaded, ``bytes_read`` into this rank's parameters, ``checkpoint_bytes``
    of every tensor the files hold that ``rename`` maps."""

    tensors: int
    bytes_read: int
    checkpoint_bytes: int


def safetensors_files(folder: str | Path) -> list[Path]:
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise ShardLoadError(f"tensor parallel: no *.safetensors file in {folder}")
    return files


@torch.no_grad()
def load_shard(
    model: torch.nn.Module,
    files: Sequence[str | Path] | str | Path,
    plan: Mapping[str, TensorSlice | None],
    rename: Callable[[str], str | Sequence[Placement] | None] = lambda name: name,
) -> ShardLoadReport:
    """Copy this rank's slice of every checkpoint tensor into ``model``'s parameter of the
    same (renamed) name. ``files``: safetensors files or a folder of them. ``rename`` may
    map a tensor to placements (one per part of a split), each a plain rename or a
    :class:`~tttv2.blocks.weights.StoredRegion` of the stored tensor; an opaque derivation
    is refused."""
    if isinstance(files, (str, Path)):
        files = safetensors_files(files) if Path(files).is_dir() else [Path(files)]
    params = dict(model.named_parameters())
    loaded: set[str] = set()
    bytes_read = checkpoint_bytes = 0
    for path in files:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            for key in f.keys():
                mapped = rename(key)
                if mapped is None:
                    continue
                piece = f.get_slice(key)
                full_shape = tuple(piece.get_shape())
                checkpoint_bytes += _DTYPE_BYTES.get(piece.get_dtype(), 0) * _numel(full_shape)
                targets = [(mapped, None)] if isinstance(mapped, str) else _regions(key, mapped)
                for name, region in targets:
                    if name in plan and plan[name] is None:
                        continue  # another rank's tensor
                    if name not in params:
                        raise ShardLoadError(
                            f"tensor parallel: unexpected tensor {key!r} (as {name!r}) in {Path(path).name}"
                        )
                    part = plan.get(name) or TensorSlice.replicated()
                    value = _read(key, piece, full_shape, name, part, region, params[name])
                    params[name].copy_(value)
                    loaded.add(name)
                    bytes_read += value.numel() * value.element_size()
    missing = sorted(set(params) - loaded)
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise ShardLoadError(f"tensor parallel: checkpoint lacks {shown}")
    return ShardLoadReport(len(loaded), bytes_read, checkpoint_bytes)


def _regions(key: str, placements: Sequence[Placement]) -> list[tuple[str, StoredRegion | None]]:
    """Each placement's target and region; an opaque derivation is refused by name."""
    out = []
    for p in placements:
        if not p.is_structural:
            raise ShardLoadError(
                f"tensor parallel: checkpoint tensor {key!r} is derived for {p.target!r} by "
                f"{p.how or 'a function'}, which is not a range of the stored tensor"
            )
        out.append((p.target, p.region))
    return out


def _read(
    key: str,
    piece: object,
    full_shape: tuple[int, ...],
    name: str,
    part: TensorSlice,
    region: StoredRegion | None,
    param: torch.Tensor,
) -> torch.Tensor:
    """This rank's ``part`` of the target ``name`` (``region`` of the stored tensor ``key``,
    or all of it), shapes checked against the plan and the module before reading."""
    try:
        target_shape = full_shape if region is None else region.shape(full_shape)
    except ValueError as exc:
        raise ShardLoadError(f"tensor parallel: {key!r} {full_shape} as {name!r}: {exc}") from None
    part.check(name, target_shape)
    if tuple(param.shape) != part.shape(target_shape):
        raise ShardLoadError(
            f"tensor parallel: {key!r} {full_shape} gives this rank {part.shape(target_shape)}, "
            f"the module's {name} is {tuple(param.shape)}"
        )
    if region is None:
        return part.take(piece)
    cut = None if part.dim is None else (part.dim, part.start, part.stop)
    return region.take(piece, cut)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
