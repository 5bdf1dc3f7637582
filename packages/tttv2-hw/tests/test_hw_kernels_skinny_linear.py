"""The native decode product (``native/skinny_linear.c``) against ``x @ W.T + b`` in float64,
at every row count it serves, every dtype, shapes with tails in all three dimensions."""

from __future__ import annotations

import importlib

import pytest
import torch
from hw_close import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st

from tttv2.hw.kernels.linear import cpu_linear
from tttv2.hw.kernels.native import NativeKernelUnavailable
from tttv2.hw.kernels.native.skinny_linear import (
    SKINNY_MAX_ROWS,
    skinny_kernel,
    skinny_linear,
    skinny_linear_applies,
)

skinny_module = importlib.import_module("tttv2.hw.kernels.native.skinny_linear")
linear_module = importlib.import_module("tttv2.hw.kernels.linear")
built = skinny_kernel()
needs_kernel = pytest.mark.skipif(
    isinstance(built, NativeKernelUnavailable), reason=f"native kernel not built here: {built}"
)

#: One rounding of the output in each dtype (fp32: accumulation order over K <= 300 terms).
TOLERANCE = {torch.float32: (1e-4, 1e-5), torch.bfloat16: (5e-2, 8e-3), torch.float16: (1e-2, 1e-3)}


def _reference(x, w, b):
    out = x.double() @ w.double().T
    return out + b.double() if b is not None else out


def _case(rows, out_features, in_features, dtype, bias, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, in_features, generator=g).to(dtype)
    w = torch.randn(out_features, in_features, generator=g).to(dtype) / in_features**0.5
    b = torch.randn(out_features, generator=g).to(dtype) if bias else None
    return x, w, b


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 7, 8, 16])
@pytest.mark.parametrize("bias", [False, True])
def test_skinny_linear_matches_reference(dtype, rows, bias):
    x, w, b = _case(rows, 77, 203, dtype, bias)  # 77 = 6 blocks of 12 + 5; 203 = 25*8 + 3
    out = skinny_linear(x, w, b)
    assert out.dtype == dtype and out.shape == (rows, 77)
    atol, rtol = TOLERANCE[dtype]
    assert_close(out, _reference(x, w, b), atol=atol, rtol=rtol)


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
def test_skinny_linear_any_shape(rows, out_features, in_features, dtype, bias, seed):
    x, w, b = _case(rows, out_features, in_features, dtype, bias, seed)
    atol, rtol = TOLERANCE[dtype]
    assert_close(skinny_linear(x, w, b), _reference(x, w, b), atol=atol, rtol=rtol)


@needs_kernel
def test_bf16_result_is_the_fp32_product_rounded_once():
    """Rounding is round-to-nearest-even of the fp32 sum: at most one bf16 step (2^-8
    relative) from torch's fp32 product rounded the same way."""
    x, w, b = _case(3, 64, 512, torch.bfloat16, True)
    ours = skinny_linear(x, w, b).float()
    want = (x.float() @ w.float().T + b.float()).bfloat16().float()
    assert_close(ours, want, atol=1e-6, rtol=2.0**-8)
    assert (ours == want).float().mean() > 0.95  # nearly always the same bf16 value


@needs_kernel
def test_many_chunks_and_threads_give_the_same_result(monkeypatch):
    x, w, b = _case(6, 301, 40, torch.bfloat16, True)
    whole = skinny_linear(x, w, b)
    monkeypatch.setattr(skinny_module, "CHUNK_BYTES", 2 * 40 * 12)  # one register block per chunk
    assert torch.equal(skinny_linear(x, w, b), whole)  # each output is summed the same way
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(skinny_linear(x, w, b), whole)
    finally:
        torch.set_num_threads(threads)


@needs_kernel
def test_leading_dims_and_non_contiguous_input():
    x, w, b = _case(6, 20, 24, torch.float32, True)
    x3 = x.view(2, 3, 24)
    assert skinny_linear(x3, w, b).shape == (2, 3, 20)
    strided = torch.randn(24, 4)[:, 1]  # one row, stride 4
    assert_close(skinny_linear(strided, w), _reference(strided[None], w, None)[0], atol=1e-4)


@needs_kernel
def test_nan_and_inf_propagate():
    x, w, _ = _case(2, 8, 16, torch.bfloat16, False)
    x[0, 3] = float("nan")
    x[1, 0] = float("inf")
    w[:, 0] = 1.0
    out = skinny_linear(x, w)
    assert out[0].isnan().all() and out[1].isinf().all() and out[1].gt(0).all()


@needs_kernel
def test_cpu_linear_sends_decode_rows_to_the_kernel(monkeypatch):
    calls = []
    monkeypatch.setattr(
        linear_module, "skinny_linear", lambda *a: calls.append(a) or torch.zeros(1)
    )
    w = torch.randn(8, 16).bfloat16()
    cpu_linear(torch.randn(1, 16).bfloat16(), w)
    cpu_linear(torch.randn(SKINNY_MAX_ROWS, 16).bfloat16(), w)
    assert len(calls) == 2
    cpu_linear(torch.randn(SKINNY_MAX_ROWS + 1, 16).bfloat16(), w)  # prefill: BLAS
    cpu_linear(torch.randn(1, 16), w.float().requires_grad_())  # autograd records: torch
    assert len(calls) == 2


@needs_kernel
def test_applies_only_where_the_kernel_is_right():
    w = torch.randn(8, 16)
    x = torch.randn(2, 16)
    assert skinny_linear_applies(x, w, None, 2)
    assert not skinny_linear_applies(x, w, None, 0)
    assert not skinny_linear_applies(x.bfloat16(), w, None, 2)  # mixed dtypes: F.linear's error
    assert not skinny_linear_applies(x, w.t().contiguous().t(), None, 2)  # transposed weight
    assert not skinny_linear_applies(x, w, torch.randn(8).bfloat16(), 2)
    assert not skinny_linear_applies(x.to(torch.float64), w.double(), None, 2)
    assert skinny_linear_applies(x, w.requires_grad_(), None, 2) is False
    with torch.no_grad():
        assert skinny_linear_applies(x, w, None, 2)
