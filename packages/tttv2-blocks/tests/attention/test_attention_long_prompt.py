"""LONG_CONTEXT keeps peak memory bounded: a 32k-token prompt prefilled in chunks of 512.

One-shot attention over 32768 tokens would hold ``[S, S]`` score matrices (4 GiB per head
in fp32; even the boolean causal mask is 1 GiB). Chunked prefill holds, per chunk, at most
``[chunk, S]`` of mask/scores plus ``[S, Hkv, D]`` gathered keys and values. The test
measures the process's peak resident memory during the forward (Linux ``VmHWM``, reset
just before) and requires it to stay under 192 MiB above the memory held before (inputs,
weights, cache and output buffers excluded: they exist before the call or are a few MiB).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from tttv2.blocks import Attention, PagedKVCache
from tttv2.core import AttentionSpec, MultiModeStrategy

SEQ = 32768
CHUNK = 512
BOUND_MIB = 192
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


@pytest.mark.skipif(
    not _can_reset_peak(), reason="needs Linux /proc/self/clear_refs to measure peak memory"
)
def test_32k_prompt_prefills_in_chunks_within_a_memory_bound() -> None:
    spec = AttentionSpec(hidden_dim=16, num_heads=1, num_kv_heads=1, head_dim=8, max_seq_len=SEQ)
    torch.manual_seed(0)
    attn = Attention(spec, execution_strategy=MultiModeStrategy(chunk_size=CHUNK))
    cache = PagedKVCache.for_specs(
        [spec], num_blocks=SEQ // 256, block_size=256, dtype=torch.float32
    )
    manager = cache.block_manager(SEQ)
    x = torch.randn(SEQ, spec.hidden_dim)
    with torch.inference_mode():
        meta = manager.prepare([0], [SEQ], "long_context")
        assert _can_reset_peak()
        before = _status_bytes("VmRSS")
        y = attn.run_in_mode("long_context", x, meta, cache.layer(0))
        peak = _status_bytes("VmHWM") - before

        # The last token, decoded again through the paged-decode path, agrees.
        manager.truncate(0, SEQ - 1)
        meta = manager.prepare([0], [1], "decode")
        last = attn.run_in_mode("decode", x[-1:], meta, cache.layer(0))
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert (last - y[-1:]).abs().max().item() <= 1e-5 * max(1.0, y[-1].abs().max().item())
    assert peak < BOUND_MIB * 2**20, f"peak extra memory {peak / 2**20:.0f} MiB >= {BOUND_MIB} MiB"
