"""PagedKVCache / LayerKVCache / StaticKVCache: layout, writes and reads through the
slots and block tables a KVBlockManager hands out, defaults from tttv2-hw, clear errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tttv2.blocks import LayerKVCache, PagedKVCache, StaticKVCache
from tttv2.core import AttentionSpec, KVCacheExhaustedError, KVCacheSpec, TTTv2Error
from tttv2.hw import get_optimal_params

SPEC = AttentionSpec(hidden_dim=32, num_heads=4, num_kv_heads=2, head_dim=8, max_seq_len=64)


def _tokens(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, 8, generator=g), torch.randn(n, 2, 8, generator=g)


@settings(max_examples=25, deadline=None)
@given(
    block_size=st.sampled_from([1, 2, 3, 8, 64]),
    passes=st.lists(
        st.dictionaries(st.integers(0, 3), st.integers(1, 9), min_size=1), min_size=1, max_size=4
    ),
)
def test_what_is_written_through_slots_reads_back_through_block_tables(block_size, passes) -> None:
    """Every sequence reads back exactly its own tokens, in order, however the passes
    interleave sequences and however big the blocks are."""
    cache = PagedKVCache.for_specs(  # fp32 like the data: exact read-back on every device profile
        [SPEC], num_blocks=4 * 64 // block_size + 4, block_size=block_size, dtype=torch.float32
    )
    layer = cache.layer(0)
    manager = cache.block_manager(64)
    written: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    for i, step in enumerate(passes):
        meta = manager.prepare(list(step), list(step.values()), "unified")
        k, v = _tokens(meta.num_tokens, i)
        layer.write(k, v, meta.slot_mapping)
        start = 0
        for s, n in step.items():
            written.setdefault(s, []).append((k[start : start + n], v[start : start + n]))
            start += n
    for s, parts in written.items():
        want_k, want_v = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        table = torch.tensor(manager.block_table(s))
        n = manager.seq_len(s)
        got_k, got_v = layer.read(table, 0, n)
        assert torch.equal(got_k, want_k) and torch.equal(got_v, want_v)
        lo = n // 3  # any sub-range, e.g. a sliding window's
        assert torch.equal(layer.read(table, lo, n)[0], want_k[lo:])


def test_static_layout_is_one_block_per_sequence_and_reads_only_the_range() -> None:
    cache = StaticKVCache([SPEC, SPEC], max_batch=3, max_seq_len=64, dtype=torch.float32)
    assert (cache.num_blocks, cache.block_size, cache.num_layers) == (3, 64, 2)
    manager = cache.block_manager()
    meta = manager.prepare([7, 8, 9], [5, 1, 64], "prefill")
    assert [len(manager.block_table(s)) for s in (7, 8, 9)] == [1, 1, 1]
    with pytest.raises(KVCacheExhaustedError):
        manager.prepare([10], [1], "prefill")  # a fourth sequence does not fit
    k, v = _tokens(70, 0)
    cache.layer(1).write(k, v, meta.slot_mapping)
    got = cache.layer(1).read(meta.block_tables[0], 0, 5)[0]
    assert got.shape == (5, 2, 8) and torch.equal(got, k[:5])
    with pytest.raises(TTTv2Error, match="context limit"):
        manager.prepare([7], [60], "prefill")


def test_layers_may_differ_in_heads_but_share_the_block_numbering() -> None:
    specs = [SPEC, KVCacheSpec(num_kv_heads=1, head_dim=16, max_seq_len=64)]
    cache = PagedKVCache.for_specs(specs, num_blocks=10, block_size=4, dtype=torch.bfloat16)
    assert [tuple(layer.key.shape) for layer in cache] == [(10, 4, 2, 8), (10, 4, 1, 16)]
    assert cache.layer(-1) is cache.layer(1) and len(cache) == 2
    assert cache.dtype == torch.bfloat16 and cache.device == torch.device("cpu")
    assert cache.memory_bytes == 2 * 2 * (10 * 4 * 2 * 8 + 10 * 4 * 1 * 16)
    layer = cache.layer(1)
    layer.write(torch.ones(2, 1, 16), torch.ones(2, 1, 16), torch.tensor([5, 6]))  # cast on write
    assert layer.key.dtype == torch.bfloat16 and layer.key.view(-1, 1, 16)[5:7].eq(1).all()


def test_block_size_and_dtype_default_to_the_hardware_parameters(tmp_path, monkeypatch) -> None:
    # Values unlike the built-in fallbacks (16, the default dtype), so the cache can only
    # have them by reading tttv2-hw's parameters, here overridden through TTTV2_PARAMS.
    params_file = tmp_path / "params.toml"
    params_file.write_text('[kv_cache.decode]\nkv_block_size = 32\nkv_cache_dtype = "bfloat16"\n')
    monkeypatch.setenv("TTTV2_PARAMS", str(params_file))
    params = get_optimal_params("kv_cache", "decode")
    assert (params.kv_block_size, params.kv_cache_dtype) == (32, "bfloat16")
    cache = PagedKVCache.for_specs([SPEC], num_blocks=4)
    assert (cache.block_size, cache.dtype) == (32, torch.bfloat16)
    assert cache.layer(0).key.shape == (4, 32, 2, 8)
    explicit = PagedKVCache.for_specs([SPEC], num_blocks=4, block_size=8, dtype=torch.float32)
    assert (explicit.block_size, explicit.dtype) == (8, torch.float32)


def test_bad_layouts_and_accesses_are_reported() -> None:
    with pytest.raises(ValueError, match="equal shape"):
        LayerKVCache(torch.zeros(2, 4, 1, 8), torch.zeros(2, 4, 1, 4))
    with pytest.raises(ValueError, match="num_blocks=0"):
        LayerKVCache.empty(0, 4, 1, 8, torch.float32, "cpu")
    a = LayerKVCache.empty(4, 4, 1, 8, torch.float32, "cpu")
    b = LayerKVCache.empty(5, 4, 1, 8, torch.float32, "cpu")
    with pytest.raises(ValueError, match="layer 1 has 5 blocks of 4"):
        PagedKVCache([a, b])
    with pytest.raises(IndexError, match="layer 3 does not exist"):
        PagedKVCache([a]).layer(3)
    with pytest.raises(ValueError, match=r"must be \[T, 1, 8\]"):
        a.write(torch.zeros(2, 2, 8), torch.zeros(2, 2, 8), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="slot_mapping must be"):
        a.write(torch.zeros(2, 1, 8), torch.zeros(2, 1, 8), torch.tensor([0]))
    with pytest.raises(ValueError, match="need 2 blocks; the block table has 1"):
        a.read(torch.tensor([0]), 0, 5)
    with pytest.raises(TypeError, match="num_kv_heads/head_dim"):
        PagedKVCache.for_specs([object()], num_blocks=2, block_size=2)
