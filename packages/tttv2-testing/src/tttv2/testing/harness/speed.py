"""Relative speed: a block and a baseline timed in the same process, interleaved.

Absolute times depend on the machine and its load; the *ratio* of two medians measured
side by side is what a test or a benchmark report should look at. Nothing here asserts a
time; :meth:`SpeedReport.within` lets a caller opt into a (loose) ratio check.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class SpeedReport:
    name: str
    baseline_name: str
    times_s: tuple[float, ...]
    baseline_times_s: tuple[float, ...]

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    @property
    def baseline_median_s(self) -> float:
        return statistics.median(self.baseline_times_s)

    @property
    def ratio(self) -> float:
        """``median / baseline median``: below 1 means faster than the baseline."""
        return (
            self.median_s / self.baseline_median_s if self.baseline_median_s > 0 else float("inf")
        )

    @property
    def speedup(self) -> float:
        """``baseline median / median``: above 1 means faster than the baseline."""
        return self.baseline_median_s / self.median_s if self.median_s > 0 else float("inf")

    def within(self, max_ratio: float) -> bool:
        """Whether the block is at most ``max_ratio`` times slower than the baseline."""
        return self.ratio <= max_ratio

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "baseline": self.baseline_name,
            "median_s": self.median_s,
            "baseline_median_s": self.baseline_median_s,
            "ratio": self.ratio,
            "speedup": self.speedup,
            "repeats": len(self.times_s),
        }

    def __str__(self) -> str:
        return (
            f"{self.name}: median {_fmt(self.median_s)} vs {self.baseline_name} {_fmt(self.baseline_median_s)} "
            f"-> ratio {self.ratio:.3f} ({self.speedup:.2f}x the baseline's speed, {len(self.times_s)} runs each)"
        )


def _fmt(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3f} {unit}"
    return f"{seconds / 1e-9:.1f} ns"


def default_synchronize() -> None:
    """Wait for queued GPU work so it is counted in the call that queued it."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def time_call(
    fn: Callable[[], Any],
    synchronize: Callable[[], None] = default_synchronize,
    timer: Callable[[], float] = time.perf_counter,
) -> float:
    """Seconds one call of ``fn`` takes (queued GPU work included)."""
    synchronize()
    start = timer()
    fn()
    synchronize()
    return timer() - start


def compare_speed(
    fn: Callable[[], Any],
    baseline: Callable[[], Any],
    *,
    repeats: int = 20,
    warmup: int = 3,
    name: str | None = None,
    baseline_name: str | None = None,
    synchronize: Callable[[], None] = default_synchronize,
    timer: Callable[[], float] = time.perf_counter,
) -> SpeedReport:
    """Time two zero-argument callables ``repeats`` times each after ``warmup`` calls,
    alternating which runs first so drift and caches affect both alike. ``timer`` is the
    clock (``time.perf_counter``; ``time.process_time`` ignores other processes' load)."""
    if repeats < 1 or warmup < 0:
        raise ValueError(
            f"repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}"
        )
    with torch.no_grad():
        for _ in range(warmup):
            fn()
            baseline()
        times, base_times = [], []
        for i in range(repeats):
            if i % 2 == 0:
                times.append(time_call(fn, synchronize, timer))
                base_times.append(time_call(baseline, synchronize, timer))
            else:
                base_times.append(time_call(baseline, synchronize, timer))
                times.append(time_call(fn, synchronize, timer))
    return SpeedReport(
        name=str(name or getattr(fn, "__name__", "fn")),
        baseline_name=str(baseline_name or getattr(baseline, "__name__", "baseline")),
        times_s=tuple(times),
        baseline_times_s=tuple(base_times),
    )
