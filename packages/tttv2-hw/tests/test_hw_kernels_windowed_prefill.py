"""Sliding-window prefill in query blocks: same numbers as the whole-mask computation, only
the keys inside the window read, and memory that grows with S x window instead of S^2."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from hw_close import assert_close
from hw_naive_kernels import full_mask_prefill, naive_prefill
from hypothesis import given, settings
from hypothesis import strategies as st

from tttv2.hw.kernels import prefill_attention
from tttv2.hw.kernels.prefill_attention import (
    WINDOW_BLOCK_MAX,
    WINDOW_BLOCK_MIN,
    window_query_block,
)


def _inputs(B, H, Hkv, Sq, Sk, D, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, Sq, D, generator=g).to(dtype)
    k = torch.randn(B, Hkv, Sk, D, generator=g).to(dtype)
    v = torch.randn(B, Hkv, Sk, D, generator=g).to(dtype)
    return q, k, v


def test_block_size_follows_the_window_within_bounds():
    assert window_query_block(1) == WINDOW_BLOCK_MIN
    assert window_query_block(WINDOW_BLOCK_MIN + 3) == WINDOW_BLOCK_MIN + 3
    assert window_query_block(10**6) == WINDOW_BLOCK_MAX


B128 = WINDOW_BLOCK_MIN
CASES = [  # (B, H, Hkv, Sq, Sk, D, window, softcap): several query blocks each
    (1, 2, 2, 3 * B128, 3 * B128, 8, 1, None),  # window of one: each query sees itself
    (1, 4, 2, 3 * B128 + 5, 3 * B128 + 5, 8, 7, None),  # narrow window, ragged last block
    (2, 6, 2, 2 * B128 + 1, 2 * B128 + 1, 8, B128, None),  # window == block, GQA
    (1, 4, 1, 400, 400, 8, 399, None),  # window one short of the keys
    (1, 4, 2, 300, 900, 8, 200, None),  # chunk against earlier context wider than the window
    (2, 4, 4, 300, 420, 16, 333, 3.0),  # context shorter than the window, softcap
    (1, 6, 3, 2 * B128 + 9, 5 * B128, 8, 50, 2.5),  # softcap + GQA + context
    (1, 2, 1, 1, 700, 8, 64, None),  # one query (decode-like verify) far into the keys
    (1, 2, 1, 1000, 1000, 4, WINDOW_BLOCK_MAX + 1, None),  # block capped below the window
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_windowed_matches_the_whole_mask(case):
    B, H, Hkv, Sq, Sk, D, window, softcap = case
    q, k, v = _inputs(B, H, Hkv, Sq, Sk, D)
    out = prefill_attention(q, k, v, scale=D**-0.5 * 1.3, sliding_window=window, softcap=softcap)
    assert out.shape == (B, H, Sq, D) and out.dtype == torch.float32
    ref = full_mask_prefill(q, k, v, D**-0.5 * 1.3, window, softcap)
    assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_windowed_matches_the_loop_reference_across_blocks():
    """Independent of any mask: explicit per-query loops over the keys."""
    q, k, v = _inputs(1, 2, 1, 2 * B128 + 3, 2 * B128 + 40, 4, seed=3)
    out = prefill_attention(q, k, v, scale=0.6, sliding_window=B128 - 20, softcap=2.0)
    assert_close(out, naive_prefill(q, k, v, 0.6, B128 - 20, 2.0), atol=1e-5, rtol=1e-5)


@settings(max_examples=30, deadline=None)
@given(
    B=st.integers(1, 2),
    Hkv=st.integers(1, 3),
    group=st.integers(1, 3),
    Sq=st.integers(1, 700),
    context=st.integers(0, 500),
    D=st.sampled_from([4, 8, 16]),
    window=st.integers(1, 1300),
    softcap=st.one_of(st.none(), st.floats(0.5, 30.0)),
    seed=st.integers(0, 2**16),
)
def test_windowed_any_shape(B, Hkv, group, Sq, context, D, window, softcap, seed):
    q, k, v = _inputs(B, Hkv * group, Hkv, Sq, Sq + context, D, seed)
    out = prefill_attention(q, k, v, scale=D**-0.5, sliding_window=window, softcap=softcap)
    assert_close(out, full_mask_prefill(q, k, v, D**-0.5, window, softcap), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("softcap", [None, 4.0])
def test_windowed_bf16_keeps_dtype_and_is_close(softcap):
    q, k, v = _inputs(1, 4, 2, 3 * B128 + 1, 3 * B128 + 50, 16, seed=1, dtype=torch.bfloat16)
    out = prefill_attention(q, k, v, scale=0.25, sliding_window=90, softcap=softcap)
    assert out.dtype == torch.bfloat16
    assert_close(out, full_mask_prefill(q, k, v, 0.25, 90, softcap), atol=3e-2, rtol=3e-2)


@pytest.mark.parametrize("softcap", [None, 3.0])
def test_keys_behind_every_window_are_never_read(softcap):
    """NaN in every key and value no query's window reaches leaves the output finite (the
    whole-mask computation multiplies them in and masks afterwards, which stays NaN)."""
    Sq, context, window = 2 * B128 + 7, 600, 100
    q, k, v = _inputs(1, 4, 2, Sq, Sq + context, 8, seed=2)
    reachable_from = context - window + 1
    k2, v2 = k.clone(), v.clone()
    k2[:, :, :reachable_from] = float("nan")
    v2[:, :, :reachable_from] = float("nan")
    out = prefill_attention(q, k2, v2, scale=0.3, sliding_window=window, softcap=softcap)
    assert_close(out, prefill_attention(q, k, v, scale=0.3, sliding_window=window, softcap=softcap))


_LONG_PROMPT = textwrap.dedent(
    """
    import resource, sys
    import torch
    from tttv2.hw.kernels import prefill_attention

    S, WINDOW, BUDGET = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 2, S, 8, generator=g)
    k, v = torch.randn(2, 1, 1, S, 8, generator=g)
    prefill_attention(q[:, :, :2048], k[:, :, :2048], v[:, :, :2048], scale=0.3, sliding_window=WINDOW)
    with open("/proc/self/status") as status:
        vm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    resource.setrlimit(resource.RLIMIT_AS, (vm + BUDGET, hard))
    out = prefill_attention(q, k, v, scale=0.3, sliding_window=WINDOW)
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
    worst = 0.0
    for i in (0, WINDOW - 1, WINDOW, 5000, S // 2 + 17, S - 1):
        lo = max(0, i - WINDOW + 1)
        scores = (q[0, :, i].double() @ k[0, 0, lo : i + 1].double().T) * 0.3
        want = torch.softmax(scores, dim=-1) @ v[0, 0, lo : i + 1].double()
        worst = max(worst, float((out[0, :, i].double() - want).abs().max()))
    print("max_abs_diff", worst)
    """
)


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="address-space limit read from /proc"
)
def test_long_windowed_prompt_runs_in_memory_proportional_to_the_window():
    """65,536 queries, window 64: an [S, S] bool mask alone is 4 GiB (SDPA's additive float
    mask 16 GiB more). Run with the address space capped at 1 GiB above what the process
    holds once its inputs exist and the kernels are warm; blocks need under 1 MiB."""
    S, window, budget = 65536, 64, 1 << 30
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _LONG_PROMPT, str(S), str(window), str(budget)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, (
        f"long windowed prefill failed under a 1 GiB budget:\n{proc.stderr[-2000:]}"
    )
    worst = float(proc.stdout.split("max_abs_diff")[1])
    assert worst < 1e-5, worst
