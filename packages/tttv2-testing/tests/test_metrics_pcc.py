"""PCC: correct values, explicit handling of constant and non-finite inputs, and failures
on the mistakes it exists to catch (mutated outputs, swapped heads, shifted positions)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tttv2.testing import assert_pcc, compare_pcc, pcc


def _random(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@settings(max_examples=25, deadline=None)
@given(
    arrays(np.float64, st.integers(2, 40), elements=st.floats(-1e3, 1e3)),
    arrays(np.float64, 1, elements=st.floats(-1e3, 1e3)),
)
def test_pcc_matches_numpy_corrcoef(x, noise_seed):
    rng = np.random.default_rng(abs(int(noise_seed[0])))
    y = x + rng.normal(size=x.shape)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return  # undefined correlation: covered by the explicit tests below
    expected = np.corrcoef(x, y)[0, 1]
    assert pcc(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(expected, abs=1e-9)


def test_identical_and_affine_related_tensors_correlate_perfectly():
    x = _random(8, 16)
    assert pcc(x, x) == pytest.approx(1.0)
    assert pcc(3 * x + 2, x) == pytest.approx(1.0)
    assert pcc(-x, x) == pytest.approx(-1.0)
    assert_pcc(x.bfloat16(), x, 0.99)


def test_constant_tensors_are_equal_only_if_exactly_equal():
    ones = torch.ones(4, 4)
    assert compare_pcc(ones, ones.clone()).pcc == 1.0
    report = compare_pcc(ones, ones * 1.0001)
    assert not report.passed and report.pcc == 0.0
    assert "both constant but different" in report.message
    # values whose float64 mean is inexact must still be recognised as constant
    tenth = torch.full((1000,), 0.1, dtype=torch.float64)
    assert compare_pcc(tenth, tenth.clone()).pcc == 1.0


def test_one_constant_side_is_undefined_and_fails():
    x = _random(32)
    report = compare_pcc(torch.zeros(32), x)
    assert not report.passed
    assert "actual is constant" in report.message and "undefined" in report.message
    report = compare_pcc(x, torch.full((32,), 2.0))
    assert not report.passed and "expected is constant" in report.message


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("side", ["actual", "expected"])
def test_non_finite_values_fail_with_their_index(bad, side):
    x = _random(3, 5)
    y = x.clone()
    (x if side == "actual" else y)[1, 3] = bad
    report = compare_pcc(x, y, threshold=-1.0)  # even the loosest threshold
    assert not report.passed and math.isnan(report.pcc)
    assert side in report.message and "(1, 3)" in report.message
    with pytest.raises(AssertionError, match=r"index \(1, 3\)"):
        assert_pcc(x, y, threshold=-1.0)


def test_shape_mismatch_and_empty_fail_rather_than_broadcast():
    x = _random(4, 6)
    assert "shape mismatch" in compare_pcc(x, x[:, None]).message
    assert not compare_pcc(x, x.T).passed
    assert "nothing to compare" in compare_pcc(torch.empty(0), torch.empty(0)).message


def test_mutated_output_fails_and_names_worst_element():
    expected = _random(6, 10)
    actual = expected.clone()
    actual[4, 7] += 25.0  # one corrupted element dominates the variance
    report = compare_pcc(actual, expected, 0.99)
    assert not report.passed
    assert report.worst.index == (4, 7)
    assert report.worst.actual == pytest.approx(actual[4, 7].item())
    assert report.worst.expected == pytest.approx(expected[4, 7].item())
    with pytest.raises(AssertionError) as err:
        assert_pcc(actual, expected)
    assert "(4, 7)" in str(err.value) and f"{expected[4, 7].item():.6g}" in str(err.value)


def test_swapped_heads_fail():
    tokens, heads, head_dim = 12, 4, 8
    out = _random(tokens, heads, head_dim)
    swapped = out[:, [1, 0, 2, 3]]
    assert not compare_pcc(swapped.reshape(tokens, -1), out.reshape(tokens, -1), 0.99).passed


def test_off_by_one_positions_fail():
    out = _random(16, 32)
    shifted = torch.roll(out, 1, dims=0)
    report = compare_pcc(shifted, out, 0.99)
    assert not report.passed and report.pcc < 0.5


def test_small_noise_passes_large_noise_fails():
    x = _random(64, 64)
    noise = _random(64, 64, seed=1)
    assert compare_pcc(x + 0.01 * noise, x, 0.999).passed
    assert not compare_pcc(x + 0.5 * noise, x, 0.99).passed


def test_threshold_is_validated():
    with pytest.raises(ValueError):
        compare_pcc(torch.ones(2), torch.ones(2), threshold=1.5)
