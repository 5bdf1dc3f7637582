"""Ratios of measurements taken in repeats, as ``tttv2 bench`` reports them: a missing value
(``None``, or a zero divisor) gives no ratio instead of an error, and when two contenders
are timed alternately the ratio reported is the median of the per-repeat ratios (a machine
slowing down between repeats moves both sides of a pair)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b``, or None when either is missing or ``b`` is zero."""
    return a / b if a is not None and b else None


def median_present(values: Sequence[float | None]) -> float | None:
    """The median of the values that are not None (None when there are none)."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def per_repeat_ratios(a: Sequence[float | None], b: Sequence[float | None]) -> list[float | None]:
    """``a[i] / b[i]`` for each repeat ``i`` (see :func:`ratio`); both sides must have
    as many repeats."""
    return [ratio(x, y) for x, y in zip(a, b, strict=True)]
