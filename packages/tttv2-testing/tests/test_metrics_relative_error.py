"""The norm-wise magnitude check: rounding noise passes, wrong scales and offsets fail,
non-finite and mismatched inputs fail."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tttv2.testing import assert_relative_error, compare_pcc, compare_relative_error


def _random(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), rows=st.integers(1, 16), cols=st.integers(1, 64))
def test_bf16_rounding_passes_the_bf16_preset(seed, rows, cols):
    x = _random(rows, cols, seed=seed)
    assert compare_relative_error(x.bfloat16(), x).passed  # preset from the less precise input


@pytest.mark.parametrize("dtype", ["bf16", "fp16", "fp32"])
def test_scale_and_offset_bugs_fail_although_pcc_passes(dtype):
    y = _random(8, 32)
    for wrong in (2 * y + 3, 1.1 * y, y + 0.5):
        assert compare_pcc(wrong, y, 0.99).passed
        report = compare_relative_error(wrong, y, dtype)
        assert not report.passed, report.message
        assert report.error_norm > report.bound


def test_values_and_bound_follow_the_formula():
    expected = torch.tensor([3.0, 4.0])  # ||expected|| = 5
    actual = torch.tensor([3.0, 4.5])  # ||error|| = 0.5
    report = compare_relative_error(actual, expected, atol=0.0, rtol=0.1)
    assert report.rel_error == pytest.approx(0.1) and report.bound == pytest.approx(0.5)
    assert report.passed  # exactly at the bound
    assert not compare_relative_error(actual, expected, atol=0.0, rtol=0.09).passed
    # atol * sqrt(n): every element off by atol just passes, as with element-wise allclose
    zero = torch.zeros(100)
    assert compare_relative_error(zero + 0.01, zero, atol=0.01, rtol=0.0).passed
    assert not compare_relative_error(zero + 0.011, zero, atol=0.01, rtol=0.0).passed


def test_zero_reference_has_infinite_relative_error_unless_equal():
    zero = torch.zeros(4)
    assert compare_relative_error(zero, zero.clone(), "fp32").rel_error == 0.0
    assert compare_relative_error(zero + 1, zero, "fp32").rel_error == math.inf


def test_non_finite_and_mismatched_inputs_fail():
    x = _random(3, 3)
    bad = x.clone()
    bad[1, 2] = float("nan")
    report = compare_relative_error(bad, x)
    assert not report.passed and "(1, 2)" in report.message and math.isnan(report.rel_error)
    assert not compare_relative_error(x, x[:, :2]).passed
    with pytest.raises(AssertionError, match="relative L2 error"):
        assert_relative_error(2 * x, x)
    with pytest.raises(ValueError, match="rtol"):
        compare_relative_error(x, x, rtol=-1.0)
