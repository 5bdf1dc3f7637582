"""The native RMSNorm and paged decode attention against the naive loop references, in
every dtype, and the dispatch of the CPU kernels between them and PyTorch."""

from __future__ import annotations

import importlib

import pytest
import torch
from hw_close import assert_close
from hw_naive_kernels import naive_paged_decode, naive_rms_norm
from test_hw_kernels_attention import PAGED, _paged_setup

from tttv2.hw import get_kernel
from tttv2.hw.kernels.native import NativeKernelUnavailable
from tttv2.hw.kernels.native.paged_decode_attention import (
    native_paged_decode_attention,
    native_paged_decode_attention_applies,
)
from tttv2.hw.kernels.native.rms_norm import native_rms_norm, native_rms_norm_applies
from tttv2.hw.kernels.rms_norm import cpu_rms_norm

attention_module = importlib.import_module("tttv2.hw.kernels.paged_decode_attention")
norm_module = importlib.import_module("tttv2.hw.kernels.rms_norm")
_reason = importlib.import_module("tttv2.hw.kernels.native.rms_norm")._kernel()
needs_kernel = pytest.mark.skipif(
    isinstance(_reason, NativeKernelUnavailable), reason=f"native kernels not built here: {_reason}"
)
HALF_TOL = {torch.float32: 1e-5, torch.bfloat16: 2e-2, torch.float16: 2e-3}


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("unit_offset", [False, True])
@pytest.mark.parametrize(
    "shape", [(1, 576), (3, 37), (2100, 512), (2, 5, 16)]
)  # 2100 x 512: threaded
def test_native_rms_norm_matches_reference(dtype, unit_offset, shape):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(*shape, generator=g) * 3).to(dtype)
    w = torch.randn(shape[-1], generator=g).to(dtype)
    out = native_rms_norm(x, w, 1e-5, unit_offset=unit_offset)
    assert out.dtype == dtype and out.shape == x.shape
    tol = HALF_TOL[dtype]
    assert_close(out, naive_rms_norm(x, w, 1e-5, unit_offset), atol=tol, rtol=tol)


@needs_kernel
def test_native_rms_norm_is_torch_rms_norm_up_to_the_last_bit():
    """Same operation order as F.rms_norm: bf16 outputs agree to one rounding step."""
    x, w = torch.randn(8, 2048).bfloat16(), torch.randn(2048).bfloat16()
    ours, theirs = (
        native_rms_norm(x, w, 1e-6).float(),
        torch.nn.functional.rms_norm(x, (2048,), w, 1e-6).float(),
    )
    assert_close(ours, theirs, atol=1e-6, rtol=2.0**-7)
    assert (ours == theirs).float().mean() > 0.97


@needs_kernel
@pytest.mark.parametrize("case", PAGED, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_native_paged_decode_matches_reference(case, dtype):
    seq_lens, bs, H, Hkv, D, window, softcap = case
    q, kp, vp, tables, lens = _paged_setup(seq_lens, bs, Hkv, D, H)
    q, kp, vp = q.to(dtype), kp.to(dtype), vp.to(dtype)
    out = native_paged_decode_attention(
        q, kp, vp, tables, lens, scale=0.3, sliding_window=window, softcap=softcap
    )
    assert out.dtype == dtype and out.shape == q.shape
    ref = naive_paged_decode(q, kp, vp, tables, lens, 0.3, window, softcap)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert_close(out, ref, atol=tol, rtol=tol)


@needs_kernel
def test_native_paged_decode_head_dim_with_a_tail_and_long_context():
    """head_dim 20 (8 + 8 + 4 scalar), 1000 tokens over shuffled blocks, threads on."""
    q, kp, vp, tables, lens = _paged_setup((1000, 313), 16, 2, 20, 6, seed=3)
    out = native_paged_decode_attention(q, kp, vp, tables, lens, scale=20**-0.5)
    assert_close(out, naive_paged_decode(q, kp, vp, tables, lens, 20**-0.5), atol=1e-5, rtol=1e-5)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(
    "heads",  # (H, Hkv, D): score tiles of 1, 2, 3 and 4 heads (passes 4+3, 3+2, 4+4), value tiles
    [(9, 3, 64), (7, 1, 24), (10, 2, 40), (8, 8, 32), (16, 2, 16), (8, 2, 64), (4, 2, 32)],
    ids=lambda h: f"H{h[0]}_Hkv{h[1]}_D{h[2]}",
)
@pytest.mark.parametrize(
    "window,softcap", [(None, None), (50, 30.0)], ids=["full", "window_softcap"]
)
def test_native_paged_decode_tiles_and_tails(heads, window, softcap, dtype):
    """Lengths around the 8-, 4-, 3- and 2-token score tiles and the 48-token chunks, in one batch."""
    H, Hkv, D = heads
    _check_paged_decode(
        _paged_setup((1, 2, 3, 4, 7, 37, 49, 130), 16, Hkv, D, H, seed=5), window, softcap, dtype
    )


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(
    "heads", [(8, 1, 32), (8, 2, 24), (12, 3, 16)], ids=lambda h: f"H{h[0]}_Hkv{h[1]}_D{h[2]}"
)  # MQA (one KV head: spans are the only parallelism), GQA with a head-dim tail, 3-head groups
@pytest.mark.parametrize(
    "window,softcap", [(None, None), (1300, 20.0)], ids=["full", "window_softcap"]
)
def test_native_paged_decode_long_contexts_split_into_spans(heads, window, softcap, dtype):
    """Contexts long enough to be split into spans (>= 256 tokens each) merged by their
    softmax maxima, beside short ones in the same batch; one sequence's keys made large
    in one span so the spans' maxima differ by far more than rounding."""
    H, Hkv, D = heads
    q, kp, vp, tables, lens = _paged_setup((2100, 7, 900), 16, Hkv, D, H, seed=9)
    kp[tables[0, 40]] *= 6.0  # tokens 640..655 of sequence 0 dominate their span
    _check_paged_decode((q, kp, vp, tables, lens), window, softcap, dtype)


def _check_paged_decode(setup, window, softcap, dtype):
    """The native kernel in ``dtype`` against the naive reference, scale ``1/sqrt(D)``."""
    q, kp, vp, tables, lens = setup
    q, kp, vp = q.to(dtype), kp.to(dtype), vp.to(dtype)
    scale = q.shape[-1] ** -0.5
    out = native_paged_decode_attention(
        q, kp, vp, tables, lens, scale=scale, sliding_window=window, softcap=softcap
    )
    ref = naive_paged_decode(q, kp, vp, tables, lens, scale, window, softcap)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert_close(out, ref, atol=tol, rtol=tol)


@needs_kernel
def test_native_paged_decode_refuses_out_of_range_tables():
    q, kp, vp, tables, lens = _paged_setup((5,), 4, 2, 8, 4)
    bad = tables.clone()
    bad[0, 1] = kp.shape[0]  # one past the pool
    with pytest.raises(ValueError, match="out of range"):
        native_paged_decode_attention(q, kp, vp, bad, lens, scale=1.0)
    with pytest.raises(ValueError, match="out of range"):  # longer than the table covers
        native_paged_decode_attention(
            q, kp, vp, tables, torch.tensor([4 * tables.shape[1] + 1]), scale=1.0
        )


@needs_kernel
def test_cpu_kernels_use_native_only_where_it_applies(monkeypatch):
    calls = []
    monkeypatch.setattr(
        norm_module, "native_rms_norm", lambda *a, **k: calls.append("norm") or a[0]
    )
    monkeypatch.setattr(
        attention_module,
        "native_paged_decode_attention",
        lambda *a, **k: calls.append("attn") or a[0],
    )
    x, w = torch.randn(2, 8), torch.randn(8)
    cpu_rms_norm(x, w, 1e-5)
    with pytest.raises(ValueError, match="does not match"):
        cpu_rms_norm(x, torch.randn(7), 1e-5)  # torch's path reports the mismatch
    cpu_rms_norm(x, w.requires_grad_(), 1e-5)  # autograd: torch
    q, kp, vp, tables, lens = _paged_setup((5,), 4, 2, 8, 4)
    get_kernel("paged_decode_attention", "cpu")(q, kp, vp, tables, lens, scale=1.0)
    get_kernel("paged_decode_attention", "cpu")(
        q, kp, vp, tables.int(), lens, scale=1.0
    )  # int32 table: torch
    assert calls == ["norm", "attn"]


def test_applies_checks():
    x, w = torch.randn(2, 8), torch.randn(8)
    assert not native_rms_norm_applies(x, torch.randn(8, 1))
    assert not native_rms_norm_applies(x.double(), w.double())
    q, kp, vp, tables, lens = _paged_setup((5,), 4, 2, 8, 4)
    assert not native_paged_decode_attention_applies(q, kp.transpose(1, 2), vp, tables, lens)
    assert not native_paged_decode_attention_applies(q, kp, vp.bfloat16(), tables, lens)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_native_rms_norm_keeps_nan_and_rounds_halfway_to_even(dtype):
    x = torch.ones(2, 16, dtype=dtype)
    x[0, 5] = float("nan")
    w = torch.ones(16, dtype=dtype)
    out = native_rms_norm(x, w, 0.0)
    assert out[0].isnan().all() and torch.equal(out[1], torch.ones(16, dtype=dtype))


@needs_kernel
@pytest.mark.parametrize("gain", [1 + 2.0**-8, 1 + 3 * 2.0**-8, 1 + 2.0**-9, 1 - 2.0**-10])
def test_native_rms_norm_rounds_to_bf16_as_torch_does(gain):
    """bf16 output of an exact fp32 product: ties go to even, as torch's cast does."""
    x = torch.ones(1, 16, dtype=torch.bfloat16)  # rms 1: the output is the fp32 weight, rounded
    w = torch.full((16,), gain, dtype=torch.float32)
    assert torch.equal(native_rms_norm(x, w, 0.0), w.bfloat16().view(1, 16))
