"""``assert_close`` without ``torch.testing`` (whose first call imports torch.distributed,
~15 s on a loaded 2-core machine)."""

from __future__ import annotations

import torch


def assert_close(
    actual: torch.Tensor, expected: torch.Tensor, *, atol: float = 1e-5, rtol: float = 1e-5
) -> None:
    """Shapes equal and ``|a - e| <= atol + rtol * |e|`` everywhere (NaN never passes)."""
    assert actual.shape == expected.shape, f"shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    a, e = actual.double(), expected.double()
    diff = (a - e).abs()
    bad = ~(diff <= atol + rtol * e.abs())
    if bad.any():
        worst = diff.nan_to_num(float("inf")).max().item()
        raise AssertionError(
            f"{int(bad.sum())} of {bad.numel()} elements differ (max abs diff {worst:.3g}; atol {atol}, rtol {rtol})"
        )
