"""The linear kernel: every path equals ``x @ W.T + b`` computed in float64."""

from __future__ import annotations

import importlib

import pytest
import torch
from hw_close import assert_close

from tttv2.hw import get_kernel
from tttv2.hw.kernels.linear import cpu_linear, linear, native_half_matmul, upcast_linear
from tttv2.hw.kernels.native.skinny_linear import SKINNY_MAX_ROWS

# the package exports the function ``linear`` under the submodule's name
linear_module = importlib.import_module("tttv2.hw.kernels.linear")


def _reference(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    out = x.double() @ w.double().T
    return out + b.double() if b is not None else out


@pytest.mark.parametrize("shape", [(1, 24), (24,), (1, 1, 24), (5, 24), (2, 3, 24), (0, 24)])
@pytest.mark.parametrize("bias", [False, True])
def test_cpu_linear_matches_reference_fp32(shape, bias):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g)
    w = torch.randn(17, 24, generator=g)
    b = torch.randn(17, generator=g) if bias else None
    out = cpu_linear(x, w, b)
    assert out.shape == (*shape[:-1], 17) and out.dtype == torch.float32
    assert_close(out, _reference(x, w, b), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rows", [1, 3, 70])
def test_cpu_linear_half_precision_rows(rows):
    """bf16 at every row count (one row, few rows, the fp32 path from UPCAST_MIN_ROWS)."""
    assert linear_module.UPCAST_MIN_ROWS <= 70
    g = torch.Generator().manual_seed(1)
    x, w, b = (
        torch.randn(rows, 64, generator=g),
        torch.randn(48, 64, generator=g),
        torch.randn(48, generator=g),
    )
    out = cpu_linear(x.bfloat16(), w.bfloat16(), b.bfloat16())
    assert out.dtype == torch.bfloat16 and out.shape == (rows, 48)
    ref = _reference(x.bfloat16(), w.bfloat16(), b.bfloat16())
    assert_close(out, ref, atol=0.1, rtol=2e-2)  # one bf16 rounding of |values| up to ~30


@pytest.mark.parametrize("bias", [False, True])
def test_upcast_linear_in_slices_equals_one_product(monkeypatch, bias):
    """A weight larger than the slice budget is converted slice by slice: same result."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 3, 32, generator=g).bfloat16()
    w = torch.randn(50, 32, generator=g).bfloat16()
    b = torch.randn(50, generator=g).bfloat16() if bias else None
    whole = upcast_linear(x, w, b)
    monkeypatch.setattr(linear_module, "UPCAST_CHUNK_BYTES", 4 * 32 * 7)  # 7 rows per slice
    sliced = upcast_linear(x, w, b)
    assert sliced.dtype == torch.bfloat16 and torch.equal(sliced, whole)
    assert_close(whole, _reference(x, w, b), atol=0.1, rtol=2e-2)  # fp32 product, one bf16 rounding


def test_upcast_path_taken_only_without_native_half(monkeypatch):
    calls = []
    monkeypatch.setattr(
        linear_module, "upcast_linear", lambda *a: calls.append(a) or torch.zeros(8, 8)
    )
    rows = max(linear_module.UPCAST_MIN_ROWS, SKINNY_MAX_ROWS + 1)  # past the native decode kernel
    x, w = torch.randn(rows, 16).bfloat16(), torch.randn(8, 16).bfloat16()
    cpu_linear(x, w)
    assert len(calls) == (0 if native_half_matmul(torch.bfloat16) else 1)
    cpu_linear(x.float(), w.float())  # fp32 never converts
    cpu_linear(x[:1], w)  # one row: matrix-vector product in bf16
    assert len(calls) == (0 if native_half_matmul(torch.bfloat16) else 1)


def test_cpu_linear_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="does not fit weight"):
        cpu_linear(torch.randn(2, 5), torch.randn(3, 4))
    with pytest.raises(ValueError, match="does not fit weight"):
        cpu_linear(torch.randn(4), torch.randn(4))


def test_registry_serves_the_cpu_linear_on_cpu_only():
    assert get_kernel("linear", "cpu") is cpu_linear
    assert get_kernel("linear", "cuda") is linear
    assert get_kernel("linear", "mps") is linear


@pytest.mark.parametrize("rows", [1, 3, 8, 64])
def test_cpu_linear_is_differentiable_when_grad_is_recorded(rows):
    """Weights that require grad (a freshly built nn.Linear) must work outside no_grad at
    every row count: the fp32 path's ``out=`` buffers are for inference only."""
    x = torch.randn(rows, 16).bfloat16()
    w = torch.randn(8, 16).bfloat16().requires_grad_()
    y = cpu_linear(x, w)
    assert y.requires_grad and y.shape == (rows, 8)
    y.float().sum().backward()
    assert w.grad is not None and w.grad.shape == w.shape
