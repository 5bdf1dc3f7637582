"""LONG_CONTEXT keeps peak memory bounded: a 32k-token prompt with a 4096-token sliding
window, prefilled in chunks of 512.

One-shot PREFILL of this spec (``Sq == Sk`` with a window shorter than the prompt) builds
the ``[S, S]`` boolean window mask (1 GiB at 32k) and, since a masked SDPA runs the math
path on CPU, ``[H, S, S]`` fp32 scores (4 GiB per head): about ``5 * S**2`` bytes.
:func:`test_one_shot_prefill_of_a_windowed_prompt_holds_s_by_s_state` measures that at an
eighth of the length (where it is ~80 MiB, not 5 GiB). Chunked prefill reads, per chunk,
only the ``chunk + window`` keys the chunk can see, so it holds ``[chunk, chunk + window]``
of mask and scores at most: about 30 MiB here.

Peak memory is the process's peak resident memory during the forward (Linux ``VmHWM``,
reset just before), minus what was resident before (inputs, weights, cache). The bound,
:data:`BOUND_BYTES`, is twice the chunk working set; one-shot attention needs more than
twenty times that, so the test fails if chunking is removed or the window is ignored when
reading the cache (the chunk then reads ``[chunk, S]``: ~130 MiB).
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
        hidden_dim=16, num_heads=HEADS, num_kv_heads=1, head_dim=8, max_seq_len=seq,
        sliding_window=window,
    )
    torch.manual_seed(0)
    attn = Attention(spec, execution_strategy=MultiModeStrategy(chunk_size=CHUNK))
    cache = PagedKVCache.for_specs([spec], num_blocks=seq // 256, block_size=256, dtype=torch.float32)
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
        y, peak = _peak_extra_bytes(lambda: attn.run_in_mode("long_context", x, meta, cache.layer(0)))

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
def test_one_shot_prefill_of_a_windowed_prompt_holds_s_by_s_state() -> None:
    """The premise of the bound above, at an eighth of the length: one-shot PREFILL of the
    same spec holds at least ``S * S`` bytes (the mask), growing with ``S**2``. If this
    fails, one-shot attention no longer materialises ``[S, S]`` state and the 32k test
    no longer shows that chunking matters: rework it."""
    seq, window = SEQ // 8, WINDOW // 8
    spec, attn, cache = _windowed_attention(seq, window)
    manager = cache.block_manager(seq)
    x = torch.randn(seq, spec.hidden_dim)
    with torch.inference_mode():
        meta = manager.prepare([0], [seq], "prefill")
        y, peak = _peak_extra_bytes(lambda: attn.run_in_mode("prefill", x, meta, cache.layer(0)))
    assert torch.isfinite(y).all()
    assert peak >= seq * seq, f"one-shot peak {peak / 2**20:.1f} MiB < [S, S] mask {seq * seq / 2**20:.0f} MiB"
