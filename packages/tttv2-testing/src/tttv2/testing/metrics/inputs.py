"""Turning two things to compare into float64 tensors of the same shape, or a reason why not."""

from __future__ import annotations

from typing import Any

import torch

from tttv2.testing.metrics.report import format_index
from tttv2.testing.tolerances import Tolerance, as_dtype, least_precise, tolerance_for


def as_tensor(x: Any) -> torch.Tensor:
    """A detached tensor from a tensor, array or nested sequence of numbers."""
    if isinstance(x, torch.Tensor):
        return x.detach()
    return torch.as_tensor(x)


def pair_problem(actual: torch.Tensor, expected: torch.Tensor) -> str | None:
    """Why the two tensors cannot be compared element-wise (shape, emptiness), or None."""
    if actual.shape != expected.shape:
        return f"shape mismatch: actual {tuple(actual.shape)} vs expected {tuple(expected.shape)}"
    if actual.numel() == 0:
        return f"nothing to compare: both tensors are empty (shape {tuple(actual.shape)})"
    return None


def to_float64(actual: torch.Tensor, expected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both as float64 on ``actual``'s device (complex is rejected)."""
    for name, t in (("actual", actual), ("expected", expected)):
        if t.is_complex():
            raise TypeError(
                f"{name} is complex ({t.dtype}); compare real and imaginary parts separately"
            )
    return actual.to(torch.float64), expected.to(device=actual.device, dtype=torch.float64)


def unravel(flat_index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Multi-dimensional index of a position in the flattened (row-major) tensor.

    Plain Python: ``torch.unravel_index`` imports a large part of torch on first use."""
    index = []
    for size in reversed(tuple(shape)):
        flat_index, i = divmod(flat_index, size)
        index.append(i)
    return tuple(reversed(index))


def nonfinite_problem(
    actual: torch.Tensor, expected: torch.Tensor, allow_matching_inf: bool
) -> str | None:
    """A message if NaN (always) or Inf (unless equal Inf in both at the same place) appears."""
    parts = []
    nan_a, nan_e = torch.isnan(actual), torch.isnan(expected)
    for name, mask in (("actual", nan_a), ("expected", nan_e)):
        count = int(mask.sum())
        if count:
            first = unravel(int(mask.flatten().nonzero()[0]), actual.shape)
            parts.append(f"{name} has {count} NaN value(s), first at index {format_index(first)}")
    inf_a, inf_e = torch.isinf(actual), torch.isinf(expected)
    if allow_matching_inf:
        bad = (inf_a | inf_e) & ~(inf_a & inf_e & (actual == expected))
        count = int(bad.sum())
        if count:
            i = int(bad.flatten().nonzero()[0])
            idx = unravel(i, actual.shape)
            parts.append(
                f"{count} infinite value(s) without an equal infinity on the other side, first at index "
                f"{format_index(idx)}: actual={actual.flatten()[i].item()}, expected={expected.flatten()[i].item()}"
            )
    else:
        for name, mask in (("actual", inf_a), ("expected", inf_e)):
            count = int(mask.sum())
            if count:
                first = unravel(int(mask.flatten().nonzero()[0]), actual.shape)
                parts.append(
                    f"{name} has {count} infinite value(s), first at index {format_index(first)}"
                )
    return "; ".join(parts) or None


def resolve_tolerance(
    a: torch.Tensor,
    e: torch.Tensor,
    dtype: torch.dtype | str | None,
    atol: float | None,
    rtol: float | None,
    label: str,
    check: str,
) -> tuple[Tolerance, float, float, str]:
    """The preset of ``dtype`` (default: the least precise of the two inputs), ``atol``/``rtol``
    with the caller's overrides, and the report's head line naming ``check`` and the tolerances."""
    preset = tolerance_for(
        as_dtype(dtype) if dtype is not None else least_precise(a.dtype, e.dtype)
    )
    atol = preset.atol if atol is None else atol
    rtol = preset.rtol if rtol is None else rtol
    if atol < 0 or rtol < 0:
        raise ValueError(f"atol and rtol must be >= 0, got atol={atol}, rtol={rtol}")
    tol = f"{preset.name} preset" if (atol, rtol) == (preset.atol, preset.rtol) else "custom"
    head = (f"{label}: " if label else "") + f"{check} (atol={atol:g}, rtol={rtol:g}, {tol})"
    return preset, atol, rtol, head
