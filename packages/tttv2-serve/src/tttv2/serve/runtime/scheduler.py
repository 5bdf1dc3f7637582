"""Scheduler: which requests run in the next step and how many tokens each feeds.

Every step has a token budget (``max_num_batched_tokens``) so a long prompt is prefilled
in chunks and never stalls the requests already decoding. Running requests go first, in
arrival order: each decoding request feeds its one pending token, a request still
prefilling feeds the next chunk of its prompt. Then waiting requests are admitted
first-come first-served while budget, KV blocks and ``max_num_seqs`` allow.

In that first round no request feeds more than ``long_prefill_token_threshold`` tokens
(like vLLM's option of that name), so one long prompt cannot take the whole budget while
other requests wait or prefill: a short request that arrives behind a long prompt gets its
first token within a step or two instead of after the whole prompt. Budget left over after
admission goes back to the capped prompts, oldest first, so a prompt with no competition
still takes the whole budget.

When a running request needs a KV block and none is free, the most recently admitted
running request is preempted: its blocks are copied to the spare host pool
(:class:`HostKVPool`, "swap") and freed, and it goes back to the front of the queue; when
it is admitted again its blocks are copied back and it continues where it was. When the
host pool has no room (or there is none) the blocks are discarded instead and the request
is re-prefilled later from its prompt plus the tokens it had generated ("recompute").
Another request's blocks are never touched. A request alone always fits (the engine
refuses prompts the pool cannot hold), so the oldest request always advances.

:meth:`Scheduler.snapshot` / :meth:`Scheduler.restore` save and put back the queues, the
requests' progress and the block bookkeeping (device and host), so the engine can undo a
step that failed part-way.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from tttv2.core.kv_blocks import BlockBookkeeping, KVBlockManager
from tttv2.serve.runtime.errors import InvalidParameterError
from tttv2.serve.runtime.kv_swap import HostKVPool, HostPoolBookkeeping
from tttv2.serve.runtime.sequence import RUNNING, WAITING, SequenceState
from tttv2.serve.runtime.timings import EngineStats


def is_positive_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


@dataclass
class ScheduledStep:
    chunks: list[tuple[SequenceState, int]] = field(
        default_factory=list
    )  # (request, tokens to feed)
    preempted: list[SequenceState] = field(default_factory=list)


@dataclass(frozen=True)
class SchedulerSnapshot:
    waiting: tuple[SequenceState, ...]
    running: tuple[SequenceState, ...]
    progress: tuple[
        tuple[SequenceState, str, int, int, int], ...
    ]  # status, computed, prefill, preemptions
    blocks: BlockBookkeeping
    host: HostPoolBookkeeping | None


def default_long_prefill_token_threshold(max_num_batched_tokens: int) -> int:
    """A quarter of the step's token budget (at least 1): a long prompt keeps most of the
    budget while three quarters are left for the requests competing with it."""
    return max(1, max_num_batched_tokens // 4)


class Scheduler:
    """``long_prefill_token_threshold`` (default: :func:`default_long_prefill_token_threshold`)
    caps the tokens one request feeds before every other running and waiting request has
    had its share of the step; ``max_num_batched_tokens`` turns the cap off."""

    def __init__(
        self,
        blocks: KVBlockManager,
        max_num_batched_tokens: int,
        max_num_seqs: int,
        long_prefill_token_threshold: int | None = None,
        host_pool: HostKVPool | None = None,
        stats: EngineStats | None = None,
    ) -> None:
        if long_prefill_token_threshold is None and is_positive_int(max_num_batched_tokens):
            long_prefill_token_threshold = default_long_prefill_token_threshold(
                max_num_batched_tokens
            )
        for name, v in (
            ("max_num_batched_tokens", max_num_batched_tokens),
            ("max_num_seqs", max_num_seqs),
            ("long_prefill_token_threshold", long_prefill_token_threshold),
        ):
            if not is_positive_int(v):
                raise InvalidParameterError("Scheduler", name, v, "a positive integer")
        self.blocks = blocks
        self.max_num_batched_tokens = max_num_batched_tokens
        self.max_num_seqs = max_num_seqs
        self.long_prefill_token_threshold: int = long_prefill_token_threshold  # type: ignore[assignment]  # checked above
        self.host_pool = host_pool
        self.stats = stats if stats is not None else EngineStats()
        self.waiting: deque[SequenceState] = deque()
        self.running: list[SequenceState] = []
        self.victims: list[SequenceState] = []  # preempted since the last snapshot()

    def add(self, seq: SequenceState) -> None:
        seq.status = WAITING
        self.waiting.append(seq)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def schedule(self) -> ScheduledStep:
        step = ScheduledStep()
        budget = self.max_num_batched_tokens
        cap = self.long_prefill_token_threshold
        free = self.blocks.num_free_blocks
        i = 0
        while i < len(self.running) and budget > 0:
            seq = self.running[i]
            n = min(seq.num_pending, budget, cap)
            need = self._blocks_needed(seq, n)
            while need > free:
                victim = self.running[-1]
                free += self._preempt(victim)
                step.preempted.append(victim)
                if victim is seq:
                    break
            if seq.status != RUNNING:
                break  # ``seq`` preempted itself: it was the newest; nothing after it
            free -= need
            budget -= n
            step.chunks.append((seq, n))
            i += 1
        if not step.preempted:  # blocks are short after a preemption: admit nobody this step
            while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:
                seq = self.waiting[0]
                n = min(seq.num_pending, budget, cap)
                need = self._blocks_needed(seq, n)
                if need > free:
                    break
                self.waiting.popleft()
                if self.host_pool is not None and self.host_pool.holds(seq.seq_id):
                    self._swap_in(seq)
                seq.status = RUNNING
                self.running.append(seq)
                free -= need
                budget -= n
                step.chunks.append((seq, n))
        self._hand_out_leftover(step, budget, free)
        return step

    def _hand_out_leftover(self, step: ScheduledStep, budget: int, free: int) -> None:
        """Give the budget the first round left unused to the chunks the cap shortened,
        oldest first, as far as the free blocks reach."""
        for j, (seq, n) in enumerate(step.chunks):
            if budget <= 0:
                return
            extra = min(seq.num_pending - n, budget, self._room(seq, n, free))
            if extra <= 0:
                continue
            free -= self._blocks_needed(seq, n + extra) - self._blocks_needed(seq, n)
            budget -= extra
            step.chunks[j] = (seq, n + extra)

    def remove(self, seq: SequenceState) -> None:
        """Take ``seq`` out of the queues and free its KV blocks (device and host)."""
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        self.blocks.free(seq.seq_id)
        if self.host_pool is not None:
            self.host_pool.discard(seq.seq_id)

    # -- undoing a step ---------------------------------------------------------------
    def snapshot(self) -> SchedulerSnapshot:
        """The queues, every queued request's progress and the block bookkeeping."""
        self.victims = []
        queued = (*self.waiting, *self.running)
        return SchedulerSnapshot(
            tuple(self.waiting),
            tuple(self.running),
            tuple((s, s.status, s.num_computed, s.num_prefill, s.num_preemptions) for s in queued),
            self.blocks.snapshot(),
            self.host_pool.snapshot() if self.host_pool is not None else None,
        )

    def restore(self, snap: SchedulerSnapshot) -> None:
        """Put everything :meth:`snapshot` saved back. A request preempted since then gets
        its device blocks back; a pass that ran since may have written other requests'
        keys and values into them, so a swapped one has its contents copied back from the
        host pool, and one whose KV was discarded (recompute) is preempted again."""
        victims = self.victims
        swapped = {v.seq_id: self.host_pool.table(v.seq_id) for v in victims if self._is_swapped(v)}  # type: ignore[union-attr]  # swapped => a host pool
        self.blocks.restore(snap.blocks)
        if self.host_pool is not None and snap.host is not None:
            self.host_pool.restore(snap.host)
        self.waiting = deque(snap.waiting)
        self.running = list(snap.running)
        for seq, status, computed, prefill, preemptions in snap.progress:
            seq.status, seq.num_computed, seq.num_prefill, seq.num_preemptions = (
                status,
                computed,
                prefill,
                preemptions,
            )
        self.victims = []
        for v in victims:
            if v.status != RUNNING:
                continue
            if v.seq_id in swapped and self.host_pool is not None:
                self.host_pool.copy_back(swapped[v.seq_id], self.blocks.block_table(v.seq_id))
            else:
                self._preempt(v, allow_swap=False)

    def _is_swapped(self, seq: SequenceState) -> bool:
        return self.host_pool is not None and self.host_pool.holds(seq.seq_id)

    def _blocks_needed(self, seq: SequenceState, n: int) -> int:
        if self.blocks.has_sequence(seq.seq_id):
            return self.blocks.blocks_needed(seq.seq_id, n)
        return self.blocks.blocks_needed(
            None, seq.num_computed + n
        )  # a swapped request brings its KV back

    def _room(self, seq: SequenceState, n: int, free: int) -> int:
        """Tokens ``seq`` can take beyond ``n`` in the blocks it will hold after ``n``
        tokens plus ``free`` more."""
        known = self.blocks.has_sequence(seq.seq_id)
        cached = self.blocks.seq_len(seq.seq_id) if known else 0
        held = len(self.blocks.block_table(seq.seq_id)) if known else 0
        blocks_after_n = held + self._blocks_needed(seq, n)
        return (blocks_after_n + free) * self.blocks.block_size - cached - n

    def _preempt(self, seq: SequenceState, allow_swap: bool = True) -> int:
        """Swap ``seq``'s blocks to the host pool (or, without room there, discard them:
        recompute), free them and queue ``seq`` first; returns the number of blocks freed."""
        before = self.blocks.num_free_blocks
        self.running.remove(seq)
        known = self.blocks.has_sequence(seq.seq_id)
        table = self.blocks.block_table(seq.seq_id) if known else ()
        cached = self.blocks.seq_len(seq.seq_id) if known else 0
        pool = self.host_pool
        if allow_swap and pool is not None and cached > 0 and pool.can_hold(len(table)):
            pool.swap_out(seq.seq_id, table, cached)
            seq.num_computed = cached
        else:
            seq.num_computed = 0
            seq.num_prefill = len(seq.token_ids)
            self.stats.recompute_preemptions += 1
        self.blocks.free(seq.seq_id)
        seq.num_preemptions += 1
        seq.status = WAITING
        self.waiting.appendleft(seq)
        self.victims.append(seq)
        return self.blocks.num_free_blocks - before

    def _swap_in(self, seq: SequenceState) -> None:
        """Give ``seq`` device blocks for the tokens it had cached and copy them back."""
        assert self.host_pool is not None
        self.blocks.add_sequence(seq.seq_id)
        self.blocks.reserve(seq.seq_id, self.host_pool.length(seq.seq_id))
        self.host_pool.swap_in(seq.seq_id, self.blocks.block_table(seq.seq_id))
