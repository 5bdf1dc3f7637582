"""rms_norm and apply_rotary against the naive references."""

from __future__ import annotations

import pytest
import torch
from hw_close import assert_close
from hw_naive_kernels import naive_rms_norm, naive_rotary

from tttv2.hw.kernels import apply_rotary, rms_norm


@pytest.mark.parametrize("unit_offset", [False, True])
def test_rms_norm_matches_reference(unit_offset):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 16, generator=g) * 3
    w = torch.randn(16, generator=g)
    out = rms_norm(x, w, 1e-5, unit_offset=unit_offset)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert_close(out.double(), naive_rms_norm(x, w, 1e-5, unit_offset), atol=1e-5, rtol=1e-5)


def test_rms_norm_bf16_accumulates_in_fp32():
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(4, 512, generator=g) * 50).bfloat16()
    w = torch.randn(512, generator=g).bfloat16()
    out = rms_norm(x, w, 1e-6)
    assert out.dtype == torch.bfloat16
    ref = naive_rms_norm(x.float(), w.float(), 1e-6)
    assert_close(out.double(), ref, atol=2e-2, rtol=1e-2)


def test_rms_norm_rejects_mismatched_weight():
    with pytest.raises(ValueError, match="does not match"):
        rms_norm(torch.randn(2, 8), torch.ones(4), 1e-6)


@pytest.mark.parametrize("interleaved", [False, True])
@pytest.mark.parametrize("rot_dim", [16, 8])
def test_rotary_matches_reference(interleaved, rot_dim):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 3, 16, generator=g)
    angles = torch.rand(5, rot_dim // 2, generator=g) * 6
    out = apply_rotary(x, angles.cos(), angles.sin(), interleaved=interleaved)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert_close(out.double(), naive_rotary(x, angles.cos(), angles.sin(), interleaved))
    assert_close(out[..., rot_dim:], x[..., rot_dim:])  # pass-through channels


def test_rotary_half_split_matches_hf_rotate_half():
    """The Hugging Face formula ``x*cos + rotate_half(x)*sin`` with duplicated tables."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 2, 8, generator=g)
    angles = torch.rand(4, 4, generator=g)
    cos, sin = torch.cat((angles.cos(),) * 2, -1), torch.cat((angles.sin(),) * 2, -1)
    rotate_half = torch.cat((-x[..., 4:], x[..., :4]), -1)
    hf = x * cos[:, None] + rotate_half * sin[:, None]
    assert_close(apply_rotary(x, angles.cos(), angles.sin()), hf)


def test_rotary_bf16_input_keeps_dtype():
    x = torch.randn(3, 2, 8).bfloat16()
    angles = torch.rand(3, 4)
    assert apply_rotary(x, angles.cos(), angles.sin()).dtype == torch.bfloat16


def test_rotary_rejects_bad_shapes():
    with pytest.raises(ValueError, match="exceeds head_dim"):
        apply_rotary(torch.randn(2, 1, 4), torch.ones(2, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"x \[T,H,D\]"):
        apply_rotary(torch.randn(2, 4), torch.ones(2, 2), torch.ones(2, 2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("unit_offset", [False, True])
@pytest.mark.parametrize("weight_fp32", [False, True])
def test_rms_norm_is_the_fp32_formula_bit_for_bit(dtype, unit_offset, weight_fp32):
    """The fused call rounds exactly like x.float(), pow(2).mean, +eps, rsqrt, *w, cast."""
    g = torch.Generator().manual_seed(4)
    for shape in ((3, 576), (2, 5, 64), (1, 2048)):
        x = (torch.randn(*shape, generator=g) * 20).to(dtype)
        w = torch.randn(shape[-1], generator=g).to(torch.float32 if weight_fp32 else dtype)
        xf = x.float()
        scale = w.float() + 1.0 if unit_offset else w.float()
        expected = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6) * scale).to(dtype)
        assert torch.equal(rms_norm(x, w, 1e-6, unit_offset=unit_offset), expected)
