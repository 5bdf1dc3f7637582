"""Attention kernels against the naive loop references."""

from __future__ import annotations

import pytest
import torch
from hw_close import assert_close
from hw_naive_kernels import naive_paged_decode, naive_prefill

from tttv2.hw import get_kernel
from tttv2.hw.kernels import paged_decode_attention, prefill_attention
from tttv2.hw.kernels.paged_decode_attention import cpu_paged_decode_attention

CASES = [  # (B, H, Hkv, Sq, Sk, D, window, softcap)
    (1, 4, 4, 7, 7, 8, None, None),  # one-shot prefill, MHA
    (2, 6, 2, 5, 5, 16, None, None),  # GQA
    (2, 4, 1, 3, 11, 8, None, None),  # chunk against cached context, MQA
    (1, 4, 2, 9, 9, 8, 4, None),  # sliding window
    (2, 4, 2, 4, 12, 8, 5, None),  # window + cached context
    (1, 4, 2, 6, 6, 8, None, 5.0),  # softcap
    (2, 8, 2, 3, 10, 8, 4, 3.0),  # everything at once
    (1, 2, 2, 1, 6, 4, None, None),  # a single query (speculative verify of one token)
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_prefill_matches_reference(case):
    B, H, Hkv, Sq, Sk, D, window, softcap = case
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, h, s, D, generator=g) for h, s in ((H, Sq), (Hkv, Sk), (Hkv, Sk)))
    scale = D**-0.5 * 1.7
    out = prefill_attention(q, k, v, scale=scale, sliding_window=window, softcap=softcap)
    assert out.shape == (B, H, Sq, D) and out.dtype == q.dtype
    ref = naive_prefill(q, k, v, scale, window, softcap)
    assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)


def test_prefill_bf16_keeps_dtype_and_is_close():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 4, 6, 16, generator=g) for _ in range(3))
    for softcap in (None, 4.0):
        out = prefill_attention(
            q.bfloat16(), k.bfloat16(), v.bfloat16(), scale=0.25, softcap=softcap
        )
        assert out.dtype == torch.bfloat16
        ref = naive_prefill(q, k, v, 0.25, None, softcap)
        assert_close(out.double(), ref, atol=3e-2, rtol=3e-2)


def test_prefill_rejects_bad_shapes():
    q = torch.randn(1, 3, 4, 8)
    kv = torch.randn(1, 2, 4, 8)
    with pytest.raises(ValueError, match="not a multiple"):
        prefill_attention(q, kv, kv, scale=1.0)
    with pytest.raises(ValueError, match="at least as many keys"):
        prefill_attention(torch.randn(1, 2, 5, 8), kv, kv, scale=1.0)


def _paged_setup(seq_lens, block_size, Hkv, D, H, seed=0, shuffle=True):
    """A pool with blocks handed out in shuffled order and 0-padded block tables."""
    g = torch.Generator().manual_seed(seed)
    need = [-(-n // block_size) for n in seq_lens]
    num_blocks = sum(need) + 3
    order = torch.randperm(num_blocks, generator=g) if shuffle else torch.arange(num_blocks)
    width = max(need) + 1
    tables = torch.zeros(len(seq_lens), width, dtype=torch.long)
    used = 0
    for b, n in enumerate(need):
        tables[b, :n] = order[used : used + n]
        used += n
    k_pool = torch.randn(num_blocks, block_size, Hkv, D, generator=g)
    v_pool = torch.randn(num_blocks, block_size, Hkv, D, generator=g)
    q = torch.randn(len(seq_lens), H, D, generator=g)
    return q, k_pool, v_pool, tables, torch.tensor(seq_lens, dtype=torch.long)


PAGED = [  # (seq_lens, block_size, H, Hkv, D, window, softcap)
    ((5,), 4, 4, 4, 8, None, None),
    ((1,), 4, 4, 2, 8, None, None),
    ((13,), 4, 8, 2, 8, 6, None),  # batch 1, window spanning blocks
    ((13,), 4, 8, 2, 8, 3, None),  # batch 1, window inside one block
    ((3, 17, 8, 1), 4, 8, 2, 16, None, None),  # ragged, shuffled blocks, GQA
    ((3, 17, 8, 9), 4, 4, 1, 8, 5, None),  # ragged + window
    ((6, 11), 4, 4, 2, 8, None, 2.5),  # softcap
    ((6, 11, 2), 4, 4, 2, 8, 4, 2.5),  # softcap + window
    ((16, 32), 16, 4, 2, 8, None, None),  # exactly full blocks
]


@pytest.mark.parametrize("case", PAGED, ids=str)
def test_paged_decode_matches_reference(case):
    seq_lens, bs, H, Hkv, D, window, softcap = case
    q, kp, vp, tables, lens = _paged_setup(seq_lens, bs, Hkv, D, H)
    out = paged_decode_attention(
        q, kp, vp, tables, lens, scale=0.3, sliding_window=window, softcap=softcap
    )
    assert out.shape == (len(seq_lens), H, D) and out.dtype == q.dtype
    ref = naive_paged_decode(q, kp, vp, tables, lens, 0.3, window, softcap)
    assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)
    hinted = paged_decode_attention(
        q,
        kp,
        vp,
        tables,
        lens,
        scale=0.3,
        sliding_window=window,
        softcap=softcap,
        max_seq_len=max(seq_lens),
    )
    assert_close(hinted, out)


@pytest.mark.parametrize("window", [None, 3])
@pytest.mark.parametrize("lens", [(7,), (7, 2, 5)])
def test_paged_decode_contiguous_layout(lens, window):
    """One block per sequence, block_size = max context (the static-cache special case)."""
    q, kp, vp, tables, seq_lens = _paged_setup(lens, 12, 2, 8, 4, seed=3)
    assert (tables[:, 1:] == 0).all()
    out = paged_decode_attention(q, kp, vp, tables, seq_lens, scale=0.5, sliding_window=window)
    ref = naive_paged_decode(q, kp, vp, tables, seq_lens, 0.5, window)
    assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)


def test_paged_decode_never_reads_other_sequences_or_stale_tail():
    """Poisoning every slot a sequence does not own (and its tail) changes nothing."""
    q, kp, vp, tables, lens = _paged_setup((5, 9), 4, 2, 8, 4, seed=5)
    out = paged_decode_attention(q, kp, vp, tables, lens, scale=0.5)
    owned = torch.zeros(kp.shape[:2], dtype=torch.bool)
    for b, n in enumerate(lens.tolist()):
        for p in range(n):
            owned[tables[b, p // 4], p % 4] = True
    kp2, vp2 = kp.clone(), vp.clone()
    kp2[~owned] = 1e4
    vp2[~owned] = -7e3
    assert_close(paged_decode_attention(q, kp2, vp2, tables, lens, scale=0.5), out)


def test_paged_decode_bf16():
    q, kp, vp, tables, lens = _paged_setup((4, 10), 4, 2, 16, 4, seed=2)
    out = paged_decode_attention(
        q.bfloat16(), kp.bfloat16(), vp.bfloat16(), tables, lens, scale=0.25
    )
    assert out.dtype == torch.bfloat16
    ref = naive_paged_decode(q, kp, vp, tables, lens, 0.25)
    assert_close(out.double(), ref, atol=3e-2, rtol=3e-2)


def test_paged_decode_agrees_with_prefill_last_row():
    """Decoding the last token equals the last row of a prefill over the same tokens."""
    g = torch.Generator().manual_seed(7)
    n, H, Hkv, D, bs = 10, 4, 2, 8, 4
    q = torch.randn(1, H, n, D, generator=g)
    k = torch.randn(1, Hkv, n, D, generator=g)
    v = torch.randn(1, Hkv, n, D, generator=g)
    full = prefill_attention(q, k, v, scale=0.4, sliding_window=6)
    blocks = -(-n // bs)
    kp = torch.zeros(blocks, bs, Hkv, D)
    vp = torch.zeros(blocks, bs, Hkv, D)
    kp.view(-1, Hkv, D)[:n] = k[0].transpose(0, 1)
    vp.view(-1, Hkv, D)[:n] = v[0].transpose(0, 1)
    tables = torch.arange(blocks).view(1, -1)
    dec = paged_decode_attention(
        q[:, :, -1], kp, vp, tables, torch.tensor([n]), scale=0.4, sliding_window=6
    )
    assert_close(dec, full[:, :, -1])


def test_registry_serves_these_kernels():
    assert get_kernel("prefill_attention") is prefill_attention
    assert get_kernel("paged_decode_attention", "cpu") is cpu_paged_decode_attention
    assert get_kernel("paged_decode_attention", "cuda") is paged_decode_attention


@pytest.mark.parametrize("window", [None, 9, 3])
@pytest.mark.parametrize("first_block", [0, 2])
def test_paged_decode_single_sequence_in_consecutive_blocks(first_block, window):
    """A lone sequence whose blocks are consecutive in the pool is read in place; the
    result equals the reference and the gathering path (the same blocks out of order)."""
    g = torch.Generator().manual_seed(11)
    n, bs, H, Hkv, D = 14, 4, 6, 2, 8
    blocks = -(-n // bs)
    kp = torch.randn(first_block + blocks + 1, bs, Hkv, D, generator=g)
    vp = torch.randn(first_block + blocks + 1, bs, Hkv, D, generator=g)
    q = torch.randn(1, H, D, generator=g)
    table = torch.arange(first_block, first_block + blocks).view(1, -1)
    lens = torch.tensor([n])
    out = paged_decode_attention(q, kp, vp, table, lens, scale=0.3, sliding_window=window)
    assert_close(
        out.double(), naive_paged_decode(q, kp, vp, table, lens, 0.3, window), atol=1e-5, rtol=1e-5
    )
    perm = torch.tensor([0, 2, 1, 3])[:blocks]  # swap two blocks in the pool and the table
    kp2, vp2 = kp.clone(), vp.clone()
    kp2[table[0]] = kp[table[0, perm]]
    vp2[table[0]] = vp[table[0, perm]]
    scattered = table[:, perm.argsort()]
    assert scattered[0].tolist() != table[0].tolist()
    assert_close(
        paged_decode_attention(q, kp2, vp2, scattered, lens, scale=0.3, sliding_window=window), out
    )
