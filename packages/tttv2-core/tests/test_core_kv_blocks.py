"""KVBlockManager and BatchMetadata.

The stateful test drives a manager with random prepare/truncate/free steps against a
simple model (sequence -> length) and a simulated cache pool: each new token writes
``(seq, position)`` into the flat slot ``slot_mapping`` names, and every live sequence must
read back exactly its own tokens, in order, through its block table. Any shared block,
wrong slot or wrong position shows up as a foreign or missing token.
"""

from __future__ import annotations

import gc

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tttv2.core import ExecutionMode, KVBlockManager, KVCacheExhaustedError, TTTv2Error
from tttv2.core.batch import int64_tensor


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def read_back(pool: list, table: list[int], length: int, block_size: int) -> list:
    """What attention would read for a sequence: its blocks in order, first ``length``."""
    return [pool[b * block_size + o] for b in table for o in range(block_size)][:length]


def check_metadata(meta, seq_ids, query_lens, context_lens, block_size, mgr) -> None:
    """Every field of BatchMetadata, computed independently from the inputs."""
    assert meta.seq_ids == tuple(seq_ids) and meta.query_lens == tuple(query_lens)
    assert meta.context_lens == tuple(context_lens) and meta.block_size == block_size
    positions = [p for c, q in zip(context_lens, query_lens, strict=True) for p in range(c, c + q)]
    assert meta.positions.tolist() == positions
    assert meta.seq_lens.tolist() == [c + q for c, q in zip(context_lens, query_lens, strict=True)]
    starts = [0]
    for q in query_lens:
        starts.append(starts[-1] + q)
    assert meta.query_start.tolist() == starts
    assert meta.num_tokens == len(positions) == meta.slot_mapping.numel()
    assert meta.num_seqs == len(seq_ids)
    assert meta.block_tables.shape[0] == len(seq_ids)
    for i, s in enumerate(seq_ids):
        n = ceil_div(context_lens[i] + query_lens[i], block_size)
        assert meta.block_tables[i, :n].tolist() == list(mgr.block_table(s))
        assert all(v == 0 for v in meta.block_tables[i, n:].tolist())  # padding
    for t in (
        meta.positions,
        meta.slot_mapping,
        meta.block_tables,
        meta.seq_lens,
        meta.query_start,
        meta.logits_indices,
    ):
        assert t.dtype == torch.long


class KVBlocksMachine(RuleBasedStateMachine):
    @initialize(
        num_blocks=st.integers(1, 24), block_size=st.integers(1, 8), max_seq_len=st.integers(1, 64)
    )
    def setup(self, num_blocks: int, block_size: int, max_seq_len: int) -> None:
        self.mgr = KVBlockManager(num_blocks, block_size, max_seq_len)
        self.bs, self.limit, self.total = block_size, max_seq_len, num_blocks
        self.lens: dict[int, int] = {}
        self.pool: list = [None] * (num_blocks * block_size)
        self.next_id = 0

    def snapshot(self):
        return (
            self.mgr.num_free_blocks,
            {s: (self.mgr.block_table(s), self.mgr.seq_len(s)) for s in self.lens},
        )

    def used_by(self, seq: int) -> int:
        return ceil_div(self.lens.get(seq, 0), self.bs)

    @rule(
        data=st.data(),
        mode=st.sampled_from(["prefill", "decode", "continuous_batch"]),
        logits=st.sampled_from(["last", "all"]),
    )
    def prepare(self, data, mode: str, logits: str) -> None:
        live = sorted(self.lens)
        old = data.draw(
            st.lists(st.sampled_from(live), unique=True, max_size=3) if live else st.just([])
        )
        new = list(range(self.next_id, self.next_id + data.draw(st.integers(0 if old else 1, 2))))
        seqs = data.draw(st.permutations(old + new))
        qs = [data.draw(st.integers(1, 12)) for _ in seqs]
        context = [self.lens.get(s, 0) for s in seqs]
        need = sum(
            ceil_div(c + q, self.bs) - ceil_div(c, self.bs)
            for c, q in zip(context, qs, strict=True)
        )
        free = self.mgr.num_free_blocks
        assert (
            sum(
                self.mgr.blocks_needed(s if s in self.lens else None, q)
                for s, q in zip(seqs, qs, strict=True)
            )
            == need
        )
        before = self.snapshot()
        if any(c + q > self.limit for c, q in zip(context, qs, strict=True)):
            with pytest.raises(TTTv2Error) as info:
                self.mgr.prepare(seqs, qs, mode, logits)
            assert not isinstance(info.value, KVCacheExhaustedError)  # permanent, not "retry later"
            assert self.snapshot() == before
            return
        if need > free:
            with pytest.raises(KVCacheExhaustedError) as info:
                self.mgr.prepare(seqs, qs, mode, logits)
            assert (info.value.needed, info.value.free) == (need, free)
            assert self.snapshot() == before  # all or nothing
            assert not any(self.mgr.has_sequence(s) for s in new)
            return
        meta = self.mgr.prepare(seqs, qs, mode, logits)
        self.next_id += len(new)
        for s, q in zip(seqs, qs, strict=True):
            self.lens[s] = self.lens.get(s, 0) + q
        check_metadata(meta, seqs, qs, context, self.bs, self.mgr)
        assert meta.mode is ExecutionMode(mode)
        assert self.mgr.num_free_blocks == free - need
        ends = [sum(qs[: i + 1]) - 1 for i in range(len(qs))]
        assert meta.logits_indices.tolist() == (ends if logits == "last" else list(range(sum(qs))))
        # write each new token's (seq, position) where slot_mapping says
        owners = [s for s, q in zip(seqs, qs, strict=True) for _ in range(q)]
        for owner, pos, slot in zip(
            owners, meta.positions.tolist(), meta.slot_mapping.tolist(), strict=True
        ):
            self.pool[slot] = (owner, pos)

    @precondition(lambda self: self.lens)
    @rule(data=st.data())
    def truncate(self, data) -> None:
        seq = data.draw(st.sampled_from(sorted(self.lens)))
        new_len = data.draw(st.integers(0, self.lens[seq]))
        free = self.mgr.num_free_blocks
        self.mgr.truncate(seq, new_len)
        assert self.mgr.num_free_blocks == free + self.used_by(seq) - ceil_div(new_len, self.bs)
        self.lens[seq] = new_len

    @precondition(lambda self: self.lens)
    @rule(data=st.data())
    def truncate_beyond_the_end_fails(self, data) -> None:
        seq = data.draw(st.sampled_from(sorted(self.lens)))
        before = self.snapshot()
        with pytest.raises(ValueError):
            self.mgr.truncate(seq, data.draw(st.sampled_from([-1, self.lens[seq] + 1])))
        assert self.snapshot() == before

    @precondition(lambda self: self.lens)
    @rule(data=st.data())
    def free(self, data) -> None:
        seq = data.draw(st.sampled_from(sorted(self.lens)))
        free = self.mgr.num_free_blocks
        self.mgr.free(seq)
        assert self.mgr.num_free_blocks == free + self.used_by(seq)
        del self.lens[seq]
        assert not self.mgr.has_sequence(seq)

    @rule()
    def free_unknown_is_a_no_op(self) -> None:
        before = self.snapshot()
        self.mgr.free(10_000)
        assert self.snapshot() == before

    @invariant()
    def blocks_are_owned_once_and_accounted_for(self) -> None:
        tables = {s: self.mgr.block_table(s) for s in self.lens}
        owned = [b for t in tables.values() for b in t]
        assert len(owned) == len(set(owned))  # no block in two live sequences (or twice in one)
        assert all(0 <= b < self.total for b in owned)
        assert len(owned) + self.mgr.num_free_blocks == self.total
        for s, t in tables.items():
            assert len(t) == ceil_div(self.lens[s], self.bs)
            assert self.mgr.seq_len(s) == self.lens[s]

    @invariant()
    def every_sequence_reads_back_exactly_its_own_tokens(self) -> None:
        for s, n in self.lens.items():
            got = read_back(self.pool, list(self.mgr.block_table(s)), n, self.bs)
            assert got == [(s, p) for p in range(n)]

    @invariant()
    def can_append_agrees_with_blocks_needed(self) -> None:
        for s in list(self.lens)[:2]:
            for q in (1, self.bs, self.bs + 1):
                need = ceil_div(self.lens[s] + q, self.bs) - self.used_by(s)
                assert self.mgr.blocks_needed(s, q) == need
                assert self.mgr.can_append(s, q) == (need <= self.mgr.num_free_blocks)


TestKVBlocksMachine = KVBlocksMachine.TestCase
TestKVBlocksMachine.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# -- examples -------------------------------------------------------------------------
def test_prefill_then_decode_slots_and_positions() -> None:
    mgr = KVBlockManager(num_blocks=8, block_size=4, max_seq_len=32)
    meta = mgr.prepare([7, 9], [6, 3], "prefill")
    assert mgr.block_table(7) == (0, 1) and mgr.block_table(9) == (2,)
    assert meta.positions.tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2]
    assert meta.slot_mapping.tolist() == [0, 1, 2, 3, 4, 5, 8, 9, 10]
    assert meta.block_tables.tolist() == [[0, 1], [2, 0]]
    assert meta.logits_indices.tolist() == [5, 8]
    assert meta.is_fresh_prefill and not meta.is_decode
    assert meta.total_lens == (6, 3) and meta.max_seq_len == 6

    meta = mgr.prepare([7, 9], [1, 1], ExecutionMode.DECODE)
    assert meta.context_lens == (6, 3) and meta.positions.tolist() == [6, 3]
    assert meta.slot_mapping.tolist() == [6, 11]  # block 1 offset 2; block 2 offset 3
    assert meta.is_decode and not meta.is_fresh_prefill
    assert meta.logits_indices.tolist() == [0, 1]
    meta = mgr.prepare([9], [1], "decode")  # sequence 9 crosses into a new block
    assert mgr.block_table(9) == (2, 3) and meta.slot_mapping.tolist() == [12]
    assert meta.with_mode(ExecutionMode.SPECULATIVE).mode is ExecutionMode.SPECULATIVE


def test_static_cache_is_one_block_per_sequence() -> None:
    mgr = KVBlockManager(num_blocks=3, block_size=16, max_seq_len=16)
    meta = mgr.prepare([0, 1, 2], [5, 16, 1], "prefill")
    assert [mgr.block_table(s) for s in (0, 1, 2)] == [(0,), (1,), (2,)]
    assert meta.slot_mapping.tolist()[:6] == [0, 1, 2, 3, 4, 16]
    with pytest.raises(TTTv2Error, match="context limit is 16"):
        mgr.prepare([1], [1], "decode")


def test_exhaustion_is_all_or_nothing_and_reports_needed_and_free() -> None:
    mgr = KVBlockManager(num_blocks=3, block_size=2, max_seq_len=100)
    mgr.prepare([1], [2], "prefill")
    with pytest.raises(KVCacheExhaustedError) as info:
        mgr.prepare([1, 2, 3], [1, 2, 2], "continuous_batch")
    assert (info.value.needed, info.value.free) == (3, 2)
    assert "need 3 blocks, 2 free" in str(info.value)
    assert not mgr.has_sequence(2) and not mgr.has_sequence(3)
    assert mgr.seq_len(1) == 2 and mgr.block_table(1) == (0,) and mgr.num_free_blocks == 2
    mgr.add_sequence(4)
    with pytest.raises(KVCacheExhaustedError) as info:
        mgr.reserve(4, 5)
    assert (info.value.needed, info.value.free, info.value.seq_id) == (3, 2, 4)


def test_bad_requests_change_nothing() -> None:
    mgr = KVBlockManager(num_blocks=4, block_size=2, max_seq_len=8)
    mgr.prepare([0], [3], "prefill")
    state = (mgr.num_free_blocks, mgr.block_table(0), mgr.seq_len(0))
    bad_calls = [
        (ValueError, dict(seq_ids=[0, 1], query_lens=[1])),
        (ValueError, dict(seq_ids=[], query_lens=[])),
        (ValueError, dict(seq_ids=[0, 0], query_lens=[1, 1])),
        (ValueError, dict(seq_ids=[1], query_lens=[0])),
        (TypeError, dict(seq_ids=[1], query_lens=[1.5])),
        (LookupError, dict(seq_ids=[1], query_lens=[2], mode="prefil")),
        (ValueError, dict(seq_ids=[1], query_lens=[2], logits="first")),
        (ValueError, dict(seq_ids=[1], query_lens=[2], logits=[2])),
        (ValueError, dict(seq_ids=[1], query_lens=[2], logits=[-1])),
        (TTTv2Error, dict(seq_ids=[0, 1], query_lens=[6, 1])),  # over the context limit
    ]
    for error, kwargs in bad_calls:
        with pytest.raises(error):
            mgr.prepare(**{"mode": "prefill", **kwargs})
        assert (mgr.num_free_blocks, mgr.block_table(0), mgr.seq_len(0)) == state, kwargs
        assert not mgr.has_sequence(1)
    meta = mgr.prepare([1, 0], [2, 1], "continuous_batch", logits=[0, 2])
    assert meta.logits_indices.tolist() == [0, 2]


def test_truncate_free_and_reset_return_blocks() -> None:
    mgr = KVBlockManager(num_blocks=6, block_size=2, max_seq_len=12)
    mgr.prepare([0, 1], [5, 4], "prefill")
    assert mgr.num_free_blocks == 1
    mgr.truncate(0, 2)  # speculative rollback: keeps block 0 only
    assert mgr.block_table(0) == (0,) and mgr.seq_len(0) == 2 and mgr.num_free_blocks == 3
    meta = mgr.prepare([0], [3], "speculative", logits="all")
    assert meta.positions.tolist() == [2, 3, 4] and meta.context_lens == (2,)
    assert meta.logits_indices.tolist() == [0, 1, 2]
    mgr.truncate(0, 0)
    assert mgr.block_table(0) == () and mgr.has_sequence(0)
    mgr.free(1)
    assert not mgr.has_sequence(1) and mgr.num_free_blocks == 6
    mgr.prepare([2, 3], [1, 1], "prefill")
    mgr.reset()
    assert mgr.num_free_blocks == 6 and not mgr.has_sequence(2)
    with pytest.raises(TTTv2Error, match="sequence 2 is not in the KV cache"):
        mgr.seq_len(2)
    mgr.add_sequence(5)
    with pytest.raises(TTTv2Error, match="already in the KV cache"):
        mgr.add_sequence(5)


def test_manager_arguments_are_checked() -> None:
    for kwargs in (
        {"num_blocks": 0},
        {"block_size": -1},
        {"max_seq_len": 2.0},
        {"num_blocks": True},
    ):
        args = {"num_blocks": 4, "block_size": 2, "max_seq_len": 8, **kwargs}
        with pytest.raises(ValueError, match=f"KVBlockManager.{next(iter(kwargs))}="):
            KVBlockManager(**args)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=40))
def test_int64_tensor_equals_torch_tensor(values: list[int]) -> None:
    made = int64_tensor(iter(values), torch.device("cpu"))  # any iterable of ints
    gc.collect(0)  # the young generation: a full collection per example cost ~0.6 s
    [bytearray(64) for _ in range(256)]  # freed memory reused would show in the values
    assert made.dtype == torch.int64 and made.shape == (len(values),)
    assert torch.equal(made, torch.tensor(values, dtype=torch.int64))


def test_int64_tensor_refuses_what_is_not_an_int64() -> None:
    with pytest.raises(TypeError):
        int64_tensor([1, 2.5], torch.device("cpu"))
    with pytest.raises(OverflowError):
        int64_tensor([2**63], torch.device("cpu"))
