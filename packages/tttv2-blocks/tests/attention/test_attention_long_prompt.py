"""A 32k-token prompt with a 4096-token sliding window prefills within a memory bound that
grows with ``S x window``, never ``S**2``: in chunks of 512 (LONG_CONTEXT) and in one shot
(PREFILL).

Chunked prefill reads, per chunk, only the ``chunk + window`` keys the chunk can see;
one-shot prefill hands all ``S`` queries to the kernel, which takes them in blocks of at most
512 rows, each against the ``block + window - 1`` keys its window reaches. Either way the
attention holds ``[512, 512 + window]`` of mask and scores at most: about 30 MiB here. Before
tttv2-hw computed windows in blocks, one-shot prefill built the ``[S, S]`` boolean mask
(1 GiB at 32k) and SDPA's fp32 copy of it (4 GiB).

Peak memory is the process's peak resident memory during the forward (Linux ``VmHWM``,
reset just before), minus what was resident before (inputs, weights, cache). The bound,
:data:`BOUND_BYTES`, is twice the chunk working set; the ``[S, S]`` mask alone is 18 times
that, so the tests fail if either path materialises ``[S, S]`` state or the window is
ignored when reading the cache (a chunk then reads ``[chunk, S]``: ~130 MiB).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from tttv2.blocks import Attention, PagedKVCache
from tttv2.core import AttentionSpec, MultiModeStrategy

SEQ = 32768
WINDOW = 4096
CHUNK = 512
HEADS = 1
#: Per chunk: the bool mask and about three fp32 score-sized tensors (scores, exponentials,
#: softmax), each ``[HEADS, CHUNK, CHUNK + WINDOW]``.
CHUNK_WORKING_SET = HEADS * CHUNK * (CHUNK + WINDOW) * (1 + 3 * 4)
BOUND_BYTES = 2 * CHUNK_WORKING_SET  # ~59 MiB
#: One-shot attention holds at least the ``[SEQ, SEQ]`` bool mask: 1 GiB, 18x the bound.
ONE_SHOT_MASK_BYTES = SEQ * SEQ
STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_bytes(key: str) -> int:
    match = re.search(rf"{key}:\s+(\d+) kB", STATUS.read_text())
    assert match, f"{key} missing from {STATUS}"
    return int(match.group(1)) * 1024


def _can_reset_peak() -> bool:
    try:
        CLEAR_REFS.write_text("5")  # "5" resets VmHWM to the current resident size
        return True
    except OSError:
        return False


needs_peak_reset = pytest.mark.skipif(
    not _can_reset_peak(), reason="needs Linux /proc/self/clear_refs to measure peak memory"
)


def _windowed_attention(seq: int, window: int) -> tuple[AttentionSpec, Attention, PagedKVCache]:
    spec = AttentionSpec(
        hidden_dim=16,
        num_heads=HEADS,
        num_kv_heads=1,
        head_dim=8,
        max_seq_len=seq,
        sliding_window=window,
    )
    torch.manual_seed(0)
    attn = Attention(spec, execution_strategy=MultiModeStrategy(chunk_size=CHUNK))
    cache = PagedKVCache.for_specs(
        [spec], num_blocks=seq // 256, block_size=256, dtype=torch.float32
    )
    return spec, attn, cache


def _peak_extra_bytes(run) -> tuple[torch.Tensor, int]:
    assert _can_reset_peak()
    before = _status_bytes("VmRSS")
    y = run()
    return y, _status_bytes("VmHWM") - before


@needs_peak_reset
def test_32k_prompt_prefills_in_chunks_within_a_memory_bound() -> None:
    spec, attn, cache = _windowed_attention(SEQ, WINDOW)
    manager = cache.block_manager(SEQ)
    x = torch.randn(SEQ, spec.hidden_dim)
    with torch.inference_mode():
        meta = manager.prepare([0], [SEQ], "long_context")
        y, peak = _peak_extra_bytes(
            lambda: attn.run_in_mode("long_context", x, meta, cache.layer(0))
        )

        # The last token, decoded again through the paged-decode path, agrees.
        manager.truncate(0, SEQ - 1)
        meta = manager.prepare([0], [1], "decode")
        last = attn.run_in_mode("decode", x[-1:], meta, cache.layer(0))
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert (last - y[-1:]).abs().max().item() <= 1e-5 * max(1.0, y[-1].abs().max().item())
    assert peak < BOUND_BYTES, (
        f"peak extra memory {peak / 2**20:.0f} MiB >= bound {BOUND_BYTES / 2**20:.0f} MiB"
    )


@needs_peak_reset
def test_32k_prompt_prefills_in_one_shot_within_the_same_bound() -> None:
    """One-shot PREFILL of the same prompt: the kernel's query blocks keep it under the
    chunked bound (the whole-mask computation needed ``ONE_SHOT_MASK_BYTES`` and more), and
    it computes what chunked prefill computes."""
    spec, attn, cache = _windowed_attention(SEQ, WINDOW)
    manager = cache.block_manager(SEQ)
    torch.manual_seed(1)
    x = torch.randn(SEQ, spec.hidden_dim)
    with torch.inference_mode():
        meta = manager.prepare([0], [SEQ], "prefill")
        y, peak = _peak_extra_bytes(lambda: attn.run_in_mode("prefill", x, meta, cache.layer(0)))
        manager.truncate(0, 0)
        meta = manager.prepare([0], [SEQ], "long_context")
        chunked = attn.run_in_mode("long_context", x, meta, cache.layer(0))
    assert torch.isfinite(y).all()
    assert (y - chunked).abs().max().item() <= 1e-5 * max(1.0, chunked.abs().max().item())
    assert peak < BOUND_BYTES < ONE_SHOT_MASK_BYTES, (
        f"one-shot peak extra memory {peak / 2**20:.0f} MiB >= bound {BOUND_BYTES / 2**20:.0f} MiB"
    )
