"""Maximum absolute and relative error between a result and its reference."""

from __future__ import annotations

from typing import Any

import torch

from tttv2.testing.metrics.inputs import as_tensor, nonfinite_problem, pair_problem, to_float64


def _prepared(actual: Any, expected: Any) -> tuple[torch.Tensor, torch.Tensor]:
    a, e = as_tensor(actual), as_tensor(expected)
    problem = pair_problem(a, e)
    if problem is None:
        a, e = to_float64(a, e)
        problem = nonfinite_problem(a, e, allow_matching_inf=False)
    if problem is not None:
        raise ValueError(problem)
    return a, e


def max_abs_error(actual: Any, expected: Any) -> float:
    """``max |actual - expected|``. Raises ``ValueError`` for mismatched shapes, empty
    tensors or non-finite values (an error measure cannot be trusted there)."""
    a, e = _prepared(actual, expected)
    return float((a - e).abs().max())


def max_rel_error(actual: Any, expected: Any, eps: float = 1e-12) -> float:
    """``max |actual - expected| / max(|expected|, eps)``; ``eps`` keeps zeros of the
    reference from dividing by zero (an error there shows up as ``err / eps``)."""
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    a, e = _prepared(actual, expected)
    return float(((a - e).abs() / e.abs().clamp_min(eps)).max())
