"""BackwardCompatibleAttention: the seed's constructor and ``attn(x, ..., mode=...)`` calls
still work, run the new implementations, and warn once."""

from __future__ import annotations

import warnings

import pytest
import torch
from attention_harness import assert_matches, reference_outputs

from tttv2.blocks import Attention, PagedKVCache
from tttv2.blocks.compat import BackwardCompatibleAttention
from tttv2.core import AttentionSpec, ExecutionMode, PrefillDecodeStrategy


def test_legacy_calls_run_prefill_then_decode_and_warn_once() -> None:
    torch.manual_seed(0)
    attn = BackwardCompatibleAttention(hidden_dim=32, num_heads=4)
    assert isinstance(attn, Attention)
    assert attn.spec == AttentionSpec(hidden_dim=32, num_heads=4)
    assert isinstance(attn.execution_strategy, PrefillDecodeStrategy)
    cache = PagedKVCache.for_specs([attn.spec], num_blocks=8, block_size=4, dtype=torch.float32)
    manager = cache.block_manager(32)
    x = torch.randn(7, 32)
    type(attn)._legacy_warned = False
    with warnings.catch_warnings(record=True) as caught, torch.inference_mode():
        warnings.simplefilter("always")
        meta = manager.prepare([0], [5], "prefill")
        first = attn(x[:5], meta, cache.layer(0), mode="prefill")
        assert attn.current_mode is ExecutionMode.PREFILL
        outs = [first]
        for t in (5, 6):
            meta = manager.prepare([0], [1], "decode")
            outs.append(attn(x[t : t + 1], meta, cache.layer(0), mode="decode"))
        assert attn.current_mode is ExecutionMode.DECODE
    legacy = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert len(legacy) == 1 and "legacy call style" in str(legacy[0].message)
    assert_matches(torch.cat(outs), reference_outputs(attn, {0: x})[0], torch.float32, "legacy")


def test_legacy_mode_names_are_checked() -> None:
    attn = BackwardCompatibleAttention(hidden_dim=8, num_heads=2)
    cache = PagedKVCache.for_specs([attn.spec], num_blocks=2, block_size=4)
    meta = cache.block_manager(8).prepare([0], [1], "prefill")
    with pytest.raises(LookupError, match="unknown execution mode 'prefil'"):
        attn(torch.randn(1, 8), meta, cache.layer(0), mode="prefil")
