"""Cache isolation end to end: a sequence's attention outputs and cached keys/values are
unchanged by other sequences writing, being truncated, freed, and having their blocks
handed to newcomers in the same pool."""

from __future__ import annotations

import torch

from tttv2.blocks import Attention, PagedKVCache
from tttv2.core import AttentionSpec

SPEC = AttentionSpec(
    hidden_dim=24, num_heads=4, num_kv_heads=2, head_dim=6, sliding_window=7, max_seq_len=32
)


def _run(attn, cache, manager, xs, done, step, mode):
    meta = manager.prepare(list(step), list(step.values()), mode)
    x = torch.cat([xs[s][done.get(s, 0) : done.get(s, 0) + n] for s, n in step.items()])
    y = attn.run_in_mode(mode, x, meta, cache.layer(0))
    out, start = {}, 0
    for s, n in step.items():
        out[s] = y[start : start + n]
        done[s] = done.get(s, 0) + n
        start += n
    return out


def _cached(cache, manager, seq):
    table = torch.tensor(manager.block_table(seq))
    return cache.layer(0).read(table, 0, manager.seq_len(seq))


def test_neighbours_writes_frees_and_block_reuse_do_not_touch_a_sequence() -> None:
    torch.manual_seed(0)
    attn = Attention(SPEC, execution_strategy="continuous_batching")
    g = torch.Generator().manual_seed(1)
    xs = {s: torch.randn(20, SPEC.hidden_dim, generator=g) for s in range(4)}
    a_steps = [({0: 5}, "prefill")] + [({0: 1}, "decode")] * 4

    with torch.inference_mode():
        cache = PagedKVCache.for_specs([SPEC], num_blocks=13, block_size=2, dtype=torch.float32)
        manager, done = cache.block_manager(32), {}
        alone = [_run(attn, cache, manager, xs, done, step, mode)[0] for step, mode in a_steps]

        cache = PagedKVCache.for_specs([SPEC], num_blocks=13, block_size=2, dtype=torch.float32)
        manager, done = cache.block_manager(32), {}
        shared = [_run(attn, cache, manager, xs, done, *a_steps[0])[0]]
        _run(attn, cache, manager, xs, done, {1: 6}, "prefill")
        snapshot = _cached(cache, manager, 0)
        shared.append(_run(attn, cache, manager, xs, done, *a_steps[1])[0])
        _run(attn, cache, manager, xs, done, {1: 1}, "decode")
        manager.truncate(1, 3)  # rollback: 1's slots get overwritten next
        _run(attn, cache, manager, xs, done, {1: 2}, "prefill")
        manager.free(1)  # 1's blocks go back to the pool ...
        _run(attn, cache, manager, xs, done, {2: 7}, "prefill")  # ... and 2 writes into them
        assert torch.equal(_cached(cache, manager, 0)[0][:5], snapshot[0][:5])
        assert torch.equal(_cached(cache, manager, 0)[1][:5], snapshot[1][:5])
        shared.append(_run(attn, cache, manager, xs, done, *a_steps[2])[0])
        manager.free(2)
        _run(attn, cache, manager, xs, done, {3: 15}, "prefill")  # every block but 0's and one
        assert manager.num_free_blocks == 1
        shared.append(_run(attn, cache, manager, xs, done, *a_steps[3])[0])
        batched = _run(attn, cache, manager, xs, done, {3: 1, 0: 1}, "continuous_batch")  # together

    for i, (want, got) in enumerate(zip(alone[:4], shared, strict=True)):
        assert torch.equal(got, want), f"step {i}: sequence 0 changed by its neighbours"
    assert (batched[0] - alone[4]).abs().max().item() <= 1e-5 * max(
        1.0, alone[4].abs().max().item()
    )
