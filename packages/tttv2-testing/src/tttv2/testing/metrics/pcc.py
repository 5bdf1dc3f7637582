"""Pearson correlation coefficient (PCC) between a result and its reference.

PCC compares the *shape* of two tensors' values and ignores a common scale and offset, so
it is robust to the rounding of reduced precision; it is the bring-up metric of
Tenstorrent. Undefined cases are decided explicitly, never by luck:

* NaN or Inf anywhere: fails, naming where;
* both constant: 1.0 if they are exactly equal, else 0.0 (fails);
* one constant, the other not: the correlation is undefined; reported as 0.0 (fails).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from tttv2.testing.metrics.inputs import (
    as_tensor,
    nonfinite_problem,
    pair_problem,
    to_float64,
    unravel,
)
from tttv2.testing.metrics.report import Element, ReportMixin


@dataclass(frozen=True, kw_only=True)
class PCCReport(ReportMixin):
    passed: bool
    pcc: float
    threshold: float
    max_abs_error: float
    worst: Element | None
    num_elements: int
    message: str


def pcc(actual: Any, expected: Any) -> float:
    """The Pearson correlation of the flattened tensors, with the rules above
    (NaN for non-finite input or mismatched shapes)."""
    report = compare_pcc(actual, expected, threshold=-1.0)
    return report.pcc


def compare_pcc(
    actual: Any, expected: Any, threshold: float = 0.99, *, label: str = ""
) -> PCCReport:
    """Report whether ``pcc(actual, expected) >= threshold``."""
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [-1, 1], got {threshold}")
    prefix = f"{label}: " if label else ""
    a, e = as_tensor(actual), as_tensor(expected)
    problem = pair_problem(a, e)
    if problem is None:
        a, e = to_float64(a, e)
        problem = nonfinite_problem(a, e, allow_matching_inf=False)
    if problem is not None:
        return PCCReport(
            passed=False,
            pcc=float("nan"),
            threshold=threshold,
            max_abs_error=float("nan"),
            worst=None,
            num_elements=a.numel(),
            message=f"{prefix}PCC check failed: {problem}",
        )

    diff = (a - e).abs().flatten()
    worst_flat = int(diff.argmax())
    idx = unravel(worst_flat, a.shape)
    worst = Element(idx, a.flatten()[worst_flat].item(), e.flatten()[worst_flat].item())
    value, why = _correlation(a.flatten(), e.flatten())
    passed = value >= threshold
    detail = f"largest abs error {worst.abs_error:.3g} at {worst.describe()}"
    if passed:
        message = f"{prefix}PCC {value:.6f} >= {threshold} over {a.numel()} elements; {detail}"
    else:
        message = f"{prefix}PCC {value:.6f} < {threshold} over {a.numel()} elements" + (
            f" ({why})" if why else ""
        )
        message += f"; {detail}"
    return PCCReport(
        passed=passed,
        pcc=value,
        threshold=threshold,
        max_abs_error=worst.abs_error,
        worst=worst,
        num_elements=a.numel(),
        message=message,
    )


def _correlation(a: torch.Tensor, e: torch.Tensor) -> tuple[float, str]:
    """PCC of two finite float64 vectors and, for the undefined cases, why."""
    a_const = bool(a.min() == a.max())
    e_const = bool(e.min() == e.max())
    if a_const and e_const:
        if torch.equal(a, e):
            return 1.0, ""
        return (
            0.0,
            f"both constant but different: actual={a[0].item():.6g}, expected={e[0].item():.6g}",
        )
    if a_const or e_const:
        which = "actual" if a_const else "expected"
        value = (a if a_const else e)[0].item()
        return (
            0.0,
            f"{which} is constant ({value:.6g} everywhere) while the other varies; PCC is undefined",
        )
    ac, ec = a - a.mean(), e - e.mean()
    r = (ac @ ec) / torch.sqrt((ac @ ac) * (ec @ ec))
    return float(r.clamp(-1.0, 1.0)), ""


def assert_pcc(
    actual: Any, expected: Any, threshold: float = 0.99, *, label: str = ""
) -> PCCReport:
    """Raise ``AssertionError`` (naming the worst element) unless PCC >= ``threshold``."""
    report = compare_pcc(actual, expected, threshold, label=label)
    report.raise_if_failed()
    return report
