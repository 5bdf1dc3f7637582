"""Weight-only int8 (symmetric per output channel): the native few-row kernel
(``native/skinny_linear.c`` with int8 codes and per-row scales) against the dequantised
product in float64, at every row count it serves, shapes with tails in all three
dimensions; the ``int8_linear`` op's paths (native for decode rows, dequantised per call
otherwise); and the visible fallback under a profile without AVX2."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from hw_close import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st

from tttv2.hw import get_kernel
from tttv2.hw.kernels.int8_linear import cpu_int8_linear, int8_linear
from tttv2.hw.kernels.native import NativeKernelUnavailable
from tttv2.hw.kernels.native.skinny_linear import (
    SKINNY_MAX_ROWS,
    skinny_int8_kernel,
    skinny_int8_linear,
    skinny_int8_linear_applies,
)
from tttv2.hw.precision import dequantize_int8, int8_round_trip, quantize_int8

int8_module = importlib.import_module("tttv2.hw.kernels.int8_linear")
skinny_module = importlib.import_module("tttv2.hw.kernels.native.skinny_linear")
built = skinny_int8_kernel()
needs_kernel = pytest.mark.skipif(
    isinstance(built, NativeKernelUnavailable), reason=f"native kernel not built here: {built}"
)

#: One rounding of the output in each dtype (fp32: accumulation order over K <= 300 terms).
TOLERANCE = {torch.float32: (1e-4, 1e-5), torch.bfloat16: (5e-2, 8e-3), torch.float16: (1e-2, 1e-3)}


def _case(rows, out_features, in_features, dtype, bias, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, in_features, generator=g).to(dtype)
    w = torch.randn(out_features, in_features, generator=g) / in_features**0.5
    q, scale = quantize_int8(w)
    b = torch.randn(out_features, generator=g).to(dtype) if bias else None
    return x, q, scale, b


def _reference(x, q, scale, b):
    out = x.double() @ (q.double() * scale.double()[:, None]).T
    return out + b.double() if b is not None else out


def test_quantize_is_symmetric_per_row_and_round_trips():
    w = torch.tensor([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [3.0, 1.0, -3.0]])
    q, scale = quantize_int8(w)
    assert q.dtype == torch.int8 and scale.dtype == torch.float32
    assert q.tolist() == [[64, -127, 32], [0, 0, 0], [127, 42, -127]]  # round(w / (max|row| / 127))
    assert_close(scale, torch.tensor([1 / 127, 0.0, 3 / 127]))
    assert torch.equal(dequantize_int8(q, scale, torch.bfloat16), int8_round_trip(w.bfloat16()))


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 7, 8, 16])
@pytest.mark.parametrize("bias", [False, True])
def test_int8_kernel_matches_dequantised_reference(dtype, rows, bias):
    x, q, scale, b = _case(rows, 77, 203, dtype, bias)  # 77 = 6 blocks of 12 + 5; 203 = 25*8 + 3
    out = skinny_int8_linear(x, q, scale, b)
    assert out.dtype == dtype and out.shape == (rows, 77)
    atol, rtol = TOLERANCE[dtype]
    assert_close(out, _reference(x, q, scale, b), atol=atol, rtol=rtol)


@needs_kernel
@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, SKINNY_MAX_ROWS),
    out_features=st.integers(1, 70),
    in_features=st.integers(1, 80),
    dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.float16]),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_int8_kernel_any_shape(rows, out_features, in_features, dtype, bias, seed):
    x, q, scale, b = _case(rows, out_features, in_features, dtype, bias, seed)
    atol, rtol = TOLERANCE[dtype]
    assert_close(
        skinny_int8_linear(x, q, scale, b), _reference(x, q, scale, b), atol=atol, rtol=rtol
    )


@needs_kernel
def test_int8_extremes_and_zero_rows():
    """Codes of -127 and 127 in every lane, a zero row (scale 0), a negative-heavy row."""
    x = torch.randn(3, 37)
    w = torch.randn(5, 37)
    w[1] = 0.0
    w[2] = -1.0
    w[3] = torch.where(torch.arange(37) % 2 == 0, 1.0, -0.25)
    q, scale = quantize_int8(w)
    assert int(q.min()) == -127 and int(q.max()) == 127
    out = skinny_int8_linear(x, q, scale)
    assert_close(out, _reference(x, q, scale, None), atol=1e-4, rtol=1e-5)
    assert torch.equal(out[:, 1], torch.zeros(3))


@needs_kernel
def test_many_chunks_and_threads_give_the_same_result(monkeypatch):
    x, q, scale, b = _case(6, 301, 40, torch.bfloat16, True)
    whole = skinny_int8_linear(x, q, scale, b)
    monkeypatch.setattr(skinny_module, "CHUNK_BYTES", 40 * 12)  # one register block per chunk
    assert torch.equal(skinny_int8_linear(x, q, scale, b), whole)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(skinny_int8_linear(x, q, scale, b), whole)
    finally:
        torch.set_num_threads(threads)


@needs_kernel
def test_cpu_int8_linear_sends_decode_rows_to_the_kernel(monkeypatch):
    calls = []
    monkeypatch.setattr(
        int8_module, "skinny_int8_linear", lambda *a: calls.append(a) or torch.zeros(1)
    )
    x, q, scale, _ = _case(SKINNY_MAX_ROWS + 1, 8, 16, torch.bfloat16, False)
    cpu_int8_linear(x[:1], q, scale)
    cpu_int8_linear(x[:SKINNY_MAX_ROWS], q, scale)
    assert len(calls) == 2
    cpu_int8_linear(x, q, scale)  # prefill: dequantised per call
    assert len(calls) == 2


@pytest.mark.parametrize("rows", [1, SKINNY_MAX_ROWS + 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_op_equals_linear_on_the_dequantised_weight(rows, dtype):
    """The registered kernels (torch-cpu's and the generic one) compute the product of the
    weight int8_round_trip gives: prefill exactly, decode within one rounding."""
    x, q, scale, b = _case(rows, 33, 70, dtype, True)
    want = F.linear(x, dequantize_int8(q, scale, dtype), b)
    assert torch.equal(int8_linear(x, q, scale, b), want)
    with torch.inference_mode():
        got = get_kernel("int8_linear", "cpu")(x, q, scale, b)
    atol, rtol = TOLERANCE[dtype]
    assert_close(got, want, atol=atol, rtol=rtol)
    if rows > SKINNY_MAX_ROWS:
        assert torch.equal(got.float(), cpu_int8_linear(x, q, scale, b).float())


def test_bad_operands_are_named():
    x, q, scale, _ = _case(2, 8, 16, torch.float32, False)
    with pytest.raises(ValueError, match="int8 weight"):
        int8_linear(x, q.float(), scale)
    with pytest.raises(ValueError, match="float32 scale"):
        cpu_int8_linear(x, q, scale[:-1])
    with pytest.raises(ValueError, match="x \\(2, 15\\)"):
        cpu_int8_linear(x[:, :-1], q, scale)


@needs_kernel
def test_applies_only_where_the_kernel_is_right():
    x, q, scale, b = _case(2, 8, 16, torch.bfloat16, True)
    assert skinny_int8_linear_applies(x, q, scale, b, 2)
    assert not skinny_int8_linear_applies(x, q, scale, b, SKINNY_MAX_ROWS + 1)
    assert not skinny_int8_linear_applies(x, q.float(), scale, b, 2)  # not int8 codes
    assert not skinny_int8_linear_applies(x, q, scale.double(), b, 2)
    assert not skinny_int8_linear_applies(x, q, scale, b.float(), 2)  # bias in another dtype
    assert not skinny_int8_linear_applies(x, q.t(), scale, b, 2)  # not contiguous


def test_without_avx2_the_product_is_dequantised_and_says_why():
    """Under cpu:generic (the non-x86 fallback profile) the native kernel is off on every
    host: the op reports why, logs it once, and computes the dequantised product."""
    script = textwrap.dedent(
        """
        import logging, torch
        import torch.nn.functional as F
        from tttv2.hw import get_kernel
        from tttv2.hw.kernels import int8_decode_unavailable
        from tttv2.hw.precision import dequantize_int8, quantize_int8
        logging.basicConfig(level=logging.WARNING, format="LOG %(message)s")
        q, s = quantize_int8(torch.randn(24, 40))
        x = torch.randn(1, 40).bfloat16()
        with torch.inference_mode():
            y = get_kernel("int8_linear", "cpu")(x, q, s)
            get_kernel("int8_linear", "cpu")(x, q, s)
        assert torch.equal(y, F.linear(x, dequantize_int8(q, s, torch.bfloat16)))
        print("REASON", int8_decode_unavailable())
        """
    )
    env = {**os.environ, "TTTV2_DEVICE_PROFILE": "cpu:generic"}
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout + run.stderr
    assert "REASON native int8 kernel unavailable: device profile cpu:generic" in out
    assert out.count("LOG int8 weights are dequantised per call at decode") == 1
