"""Element-wise closeness with dtype-aware tolerance presets.

An element passes when ``|actual - expected| <= atol + rtol * |expected|`` (the reference
is ``expected``). NaN anywhere fails; an infinity passes only against the same infinity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from tttv2.testing.metrics.inputs import (
    as_tensor,
    nonfinite_problem,
    pair_problem,
    resolve_tolerance,
    to_float64,
    unravel,
)
from tttv2.testing.metrics.report import Element, ReportMixin, format_index


@dataclass(frozen=True, kw_only=True)
class CloseReport(ReportMixin):
    passed: bool
    atol: float
    rtol: float
    preset: str
    num_elements: int
    num_mismatched: int
    max_abs_error: float
    max_abs_index: tuple[int, ...] | None
    max_rel_error: float
    worst: Element | None  # the element exceeding its tolerance by the largest factor
    message: str


def compare_close(
    actual: Any,
    expected: Any,
    dtype: torch.dtype | str | None = None,
    *,
    atol: float | None = None,
    rtol: float | None = None,
    label: str = "",
) -> CloseReport:
    """Compare element-wise with the preset of ``dtype`` (default: the least precise
    dtype of the two inputs); ``atol``/``rtol`` override the preset."""
    a, e = as_tensor(actual), as_tensor(expected)
    preset, atol, rtol, head = resolve_tolerance(a, e, dtype, atol, rtol, label, "allclose")

    problem = pair_problem(a, e)
    if problem is None:
        a, e = to_float64(a, e)
        problem = nonfinite_problem(a, e, allow_matching_inf=True)
    if problem is not None:
        return CloseReport(
            passed=False,
            atol=atol,
            rtol=rtol,
            preset=preset.name,
            num_elements=a.numel(),
            num_mismatched=a.numel(),
            max_abs_error=float("nan"),
            max_abs_index=None,
            max_rel_error=float("nan"),
            worst=None,
            message=f"{head} failed: {problem}",
        )

    same = a == e  # also covers equal infinities, whose difference is NaN
    diff = torch.where(same, torch.zeros_like(a), (a - e).abs())
    allowed = atol + rtol * torch.where(same, torch.zeros_like(e), e.abs())
    over = diff > allowed
    ratio = torch.where(
        allowed > 0, diff / allowed.clamp_min(torch.finfo(torch.float64).tiny), diff * float("inf")
    )
    ratio = torch.where(diff > 0, ratio, torch.zeros_like(ratio))
    num_bad = int(over.sum())

    flat_diff = diff.flatten()
    max_abs_flat = int(flat_diff.argmax())
    max_abs_index = unravel(max_abs_flat, a.shape)
    max_abs = float(flat_diff[max_abs_flat])
    rel = diff / torch.where(same, torch.ones_like(e), e.abs().clamp_min(1e-12))
    max_rel = float(rel.max())

    worst_flat = int(ratio.flatten().argmax())
    worst = Element(
        unravel(worst_flat, a.shape), a.flatten()[worst_flat].item(), e.flatten()[worst_flat].item()
    )
    stats = f"max abs err {max_abs:.3g} at {format_index(max_abs_index)}, max rel err {max_rel:.3g}"
    if num_bad == 0:
        message = f"{head} passed for {a.numel()} elements; {stats}"
    else:
        limit = atol + rtol * abs(worst.expected)
        message = (
            f"{head} failed: {num_bad} of {a.numel()} elements ({100.0 * num_bad / a.numel():.2f}%) out of "
            f"tolerance; worst at {worst.describe()}, allowed {limit:.3g}; {stats}"
        )
    return CloseReport(
        passed=num_bad == 0,
        atol=atol,
        rtol=rtol,
        preset=preset.name,
        num_elements=a.numel(),
        num_mismatched=num_bad,
        max_abs_error=max_abs,
        max_abs_index=max_abs_index,
        max_rel_error=max_rel,
        worst=worst,
        message=message,
    )


def allclose(
    actual: Any, expected: Any, dtype: torch.dtype | str | None = None, **tolerances: float
) -> bool:
    """``compare_close(...).passed``."""
    # mypy matches **tolerances against label: str too; only atol/rtol are meant
    return compare_close(actual, expected, dtype, **tolerances).passed  # type: ignore[arg-type]


def assert_close(
    actual: Any,
    expected: Any,
    dtype: torch.dtype | str | None = None,
    *,
    atol: float | None = None,
    rtol: float | None = None,
    label: str = "",
) -> CloseReport:
    """Raise ``AssertionError`` naming the worst element unless every element is close."""
    report = compare_close(actual, expected, dtype, atol=atol, rtol=rtol, label=label)
    report.raise_if_failed()
    return report
