"""allclose with dtype presets, max abs/rel error, and the tolerance presets; allclose fails on
the mistakes it exists to catch (a mutated element, swapped heads, shifted positions)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tttv2.testing import (
    TOLERANCES,
    allclose,
    assert_close,
    compare_close,
    max_abs_error,
    max_rel_error,
    tolerance_for,
)


def _random(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_max_errors():
    expected = torch.tensor([[1.0, -2.0], [4.0, 0.5]])
    actual = torch.tensor([[1.1, -2.0], [3.0, 0.5]])
    assert max_abs_error(actual, expected) == pytest.approx(1.0)
    assert max_rel_error(actual, expected) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="NaN"):
        max_abs_error(torch.tensor([float("nan")]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="shape"):
        max_rel_error(torch.ones(2), torch.ones(3))


def test_relative_error_at_reference_zero_is_visible():
    assert max_rel_error(torch.tensor([1e-3]), torch.tensor([0.0])) > 1e6
    assert max_rel_error(torch.tensor([0.0]), torch.tensor([0.0])) == 0.0


def test_presets_by_dtype_and_name():
    assert tolerance_for(torch.float32) is TOLERANCES[torch.float32]
    assert tolerance_for("bf16") is TOLERANCES[torch.bfloat16]
    assert tolerance_for("float16").name == "fp16"
    assert tolerance_for(torch.bfloat16).prefers_pcc and not tolerance_for("fp32").prefers_pcc
    # looser precision, looser tolerance
    fp32, fp16, bf16 = (tolerance_for(d) for d in ("fp32", "fp16", "bf16"))
    assert fp32.rtol < fp16.rtol < bf16.rtol and fp32.pcc > fp16.pcc > bf16.pcc
    with pytest.raises(ValueError, match="unknown dtype"):
        tolerance_for("fp8")
    with pytest.raises(ValueError, match="no tolerance preset"):
        tolerance_for(torch.int32)


def test_bf16_rounding_passes_bf16_preset_but_not_fp32():
    x = _random(32, 32)
    rounded = x.bfloat16()
    assert compare_close(rounded, x).passed  # preset picked from the less precise input
    assert compare_close(rounded, x, dtype=torch.bfloat16).preset == "bf16"
    assert not compare_close(rounded.float(), x, dtype="fp32").passed


def test_failure_names_worst_element_index_and_values():
    expected = _random(2, 3, 4)
    actual = expected.clone()
    actual[1, 2, 3] += 0.5
    actual[0, 0, 0] += 0.01
    report = compare_close(actual, expected, dtype=torch.float32)
    assert not report.passed
    assert report.num_mismatched == 2
    assert report.worst.index == (1, 2, 3)
    assert report.max_abs_index == (1, 2, 3)
    assert report.max_abs_error == pytest.approx(0.5, rel=1e-5)
    with pytest.raises(AssertionError) as err:
        assert_close(actual, expected, dtype=torch.float32)
    message = str(err.value)
    assert "(1, 2, 3)" in message and "2 of 24 elements" in message
    assert (
        f"{actual[1, 2, 3].item():.6g}" in message and f"{expected[1, 2, 3].item():.6g}" in message
    )


def test_custom_tolerances_override_the_preset():
    a, b = torch.tensor([1.0, 2.0]), torch.tensor([1.05, 2.0])
    assert not allclose(a, b, "fp32")
    assert allclose(a, b, "fp32", atol=0.1)
    report = compare_close(a, b, "fp32", atol=0.1)
    assert "custom" in report.message
    with pytest.raises(ValueError):
        compare_close(a, b, atol=-1.0)


def test_relative_tolerance_scales_with_the_reference():
    big = torch.tensor([1000.0])
    assert allclose(big + 0.05, big, "fp32")  # 0.05 <= 1e-5 + 1e-4 * 1000
    assert not allclose(big + 0.2, big, "fp32")


def test_nan_always_fails_and_infinities_must_match():
    x = torch.tensor([1.0, 2.0, 3.0])
    nan = torch.tensor([1.0, float("nan"), 3.0])
    assert not compare_close(nan, nan).passed  # NaN == NaN is not "close"
    assert "NaN" in compare_close(x, nan).message
    inf = torch.tensor([1.0, math.inf, 3.0])
    assert compare_close(inf, inf.clone()).passed
    report = compare_close(inf, x)
    assert not report.passed and "(1,)" in report.message
    assert not compare_close(-inf, inf).passed


def test_shape_mismatch_fails():
    report = compare_close(torch.ones(3), torch.ones(1))
    assert not report.passed and "shape mismatch" in report.message


def test_zero_tolerance_demands_exact_equality():
    x = _random(5)
    assert allclose(x, x.clone(), atol=0.0, rtol=0.0)
    assert not allclose(x + 1e-7, x, atol=0.0, rtol=0.0)


@settings(max_examples=40, deadline=None)
@given(
    index=st.tuples(st.integers(0, 5), st.integers(0, 9)),
    delta=st.floats(0.1, 100.0) | st.floats(-100.0, -0.1),
    dtype=st.sampled_from(["fp32", "fp16", "bf16"]),
)
def test_a_mutated_element_fails_and_is_named(index, delta, dtype):
    expected = _random(6, 10)
    actual = expected.clone()
    actual[index] += delta  # more than any preset allows where |expected| < 4
    report = compare_close(actual, expected, dtype=dtype)
    assert not report.passed and report.num_mismatched == 1
    assert report.worst.index == index and report.max_abs_index == index
    assert report.worst.expected == pytest.approx(expected[index].item())


def test_swapped_heads_fail():
    tokens, heads, head_dim = 12, 4, 8
    out = _random(tokens, heads, head_dim)
    swapped = out[:, [1, 0, 2, 3]]
    report = compare_close(
        swapped.reshape(tokens, -1), out.reshape(tokens, -1), dtype="bf16"
    )  # loosest preset
    assert not report.passed
    assert report.num_mismatched > tokens  # most elements of the two swapped heads
    assert report.worst.index[1] < 2 * head_dim  # the worst element lies in head 0 or 1


def test_off_by_one_positions_fail():
    out = _random(16, 32)
    shifted = torch.roll(out, 1, dims=0)  # position t carries position t-1's output
    report = compare_close(shifted, out, dtype="bf16")
    assert not report.passed and report.num_mismatched > out.numel() // 2
    assert not compare_close(out[1:], out[:-1], dtype="bf16").passed  # one position ahead
