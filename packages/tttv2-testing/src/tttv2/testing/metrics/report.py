"""What every comparison returns: a report that says whether it passed and why.

Reports never raise; ``raise_if_failed()`` (and the ``assert_*`` helpers) turn a failed
report into an ``AssertionError`` carrying the same message.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Element:
    """One element of a compared pair: where it is and both values."""

    index: tuple[int, ...]
    actual: float
    expected: float

    @property
    def abs_error(self) -> float:
        return abs(self.actual - self.expected)

    def describe(self) -> str:
        return (
            f"index {format_index(self.index)}: actual={self.actual:.6g}, expected={self.expected:.6g}, "
            f"abs err={self.abs_error:.3g}"
        )


class ReportMixin:
    """``passed`` and ``message`` plus the helpers shared by every report."""

    passed: bool
    message: str

    def raise_if_failed(self) -> None:
        if not self.passed:
            raise AssertionError(self.message)

    def __str__(self) -> str:
        return self.message


def format_index(index: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(i) for i in index) + ("," if len(index) == 1 else "") + ")"
