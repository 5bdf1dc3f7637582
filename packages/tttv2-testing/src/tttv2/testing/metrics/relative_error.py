"""Relative L2 error: is the result as *large* as its reference?

PCC ignores a common scale and offset (``2 * y + 3`` correlates perfectly with ``y``), and
element-wise allclose is brittle in reduced precision, where a few elements of a long
accumulation may round far. The norm-wise check sits between the two::

    ||actual - expected||_2 <= atol * sqrt(n) + rtol * ||expected||_2

with the ``atol``/``rtol`` of a dtype preset: it is ``allclose`` applied to the whole
tensor at once (every element off by exactly ``atol`` just passes), so rounding noise
averages out while a wrong scale, offset or sign does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from tttv2.testing.metrics.inputs import (
    as_tensor,
    nonfinite_problem,
    pair_problem,
    resolve_tolerance,
    to_float64,
)
from tttv2.testing.metrics.report import ReportMixin


@dataclass(frozen=True, kw_only=True)
class RelativeErrorReport(ReportMixin):
    passed: bool
    rel_error: float  # ||actual - expected|| / ||expected|| (inf when only the reference is zero)
    error_norm: float  # ||actual - expected||
    expected_norm: float  # ||expected||
    bound: float  # atol * sqrt(n) + rtol * ||expected||: the largest error_norm that passes
    atol: float
    rtol: float
    preset: str
    num_elements: int
    message: str


def compare_relative_error(
    actual: Any,
    expected: Any,
    dtype: torch.dtype | str | None = None,
    *,
    atol: float | None = None,
    rtol: float | None = None,
    label: str = "",
) -> RelativeErrorReport:
    """Report whether ``||actual - expected|| <= atol * sqrt(n) + rtol * ||expected||``
    with the preset of ``dtype`` (default: the least precise dtype of the two inputs);
    ``atol``/``rtol`` override the preset. NaN or Inf anywhere fails."""
    a, e = as_tensor(actual), as_tensor(expected)
    preset, atol, rtol, head = resolve_tolerance(
        a, e, dtype, atol, rtol, label, "relative L2 error"
    )

    problem = pair_problem(a, e)
    if problem is None:
        a, e = to_float64(a, e)
        problem = nonfinite_problem(a, e, allow_matching_inf=False)
    if problem is not None:
        nan = float("nan")
        return RelativeErrorReport(
            passed=False,
            rel_error=nan,
            error_norm=nan,
            expected_norm=nan,
            bound=nan,
            atol=atol,
            rtol=rtol,
            preset=preset.name,
            num_elements=a.numel(),
            message=f"{head} failed: {problem}",
        )

    n = a.numel()
    error_norm = float(torch.linalg.vector_norm(a - e))
    expected_norm = float(torch.linalg.vector_norm(e))
    bound = atol * math.sqrt(n) + rtol * expected_norm
    if expected_norm > 0:
        rel = error_norm / expected_norm
    else:
        rel = 0.0 if error_norm == 0 else float("inf")
    passed = error_norm <= bound
    message = (
        f"{head} {'passed' if passed else 'failed'}: ||actual - expected|| = {error_norm:.4g} "
        f"{'<=' if passed else '>'} {bound:.4g} (atol*sqrt({n}) + rtol*||expected||, ||expected|| = "
        f"{expected_norm:.4g}); relative error {rel:.4g}"
    )
    return RelativeErrorReport(
        passed=passed,
        rel_error=rel,
        error_norm=error_norm,
        expected_norm=expected_norm,
        bound=bound,
        atol=atol,
        rtol=rtol,
        preset=preset.name,
        num_elements=n,
        message=message,
    )


def assert_relative_error(
    actual: Any,
    expected: Any,
    dtype: torch.dtype | str | None = None,
    *,
    atol: float | None = None,
    rtol: float | None = None,
    label: str = "",
) -> RelativeErrorReport:
    """Raise ``AssertionError`` unless the norm-wise check of :func:`compare_relative_error` passes."""
    report = compare_relative_error(actual, expected, dtype, atol=atol, rtol=rtol, label=label)
    report.raise_if_failed()
    return report
