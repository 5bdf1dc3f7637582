"""Scheduler: which requests run in the next step and how many tokens each feeds.

Every step has a token budget (``max_num_batched_tokens``) so a long prompt is prefilled
in chunks and never stalls the requests already decoding. Running requests go first, in
arrival order: each decoding request feeds its one pending token, a request still
prefilling feeds as much of its prompt as the budget leaves. Then waiting requests are
admitted first-come first-served while budget, KV blocks and ``max_num_seqs`` allow.

When a running request needs a KV block and none is free, the most recently admitted
running request is preempted: its blocks are freed and it goes back to the front of the
queue, to be re-prefilled later from its prompt plus the tokens it had generated
("recompute"). Another request's blocks are never touched. A request alone always fits
(the engine refuses prompts the pool cannot hold), so the oldest request always advances.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from tttv2.core.kv_blocks import KVBlockManager
from tttv2.core.runtime.sequence import RUNNING, WAITING, SequenceState


@dataclass
class ScheduledStep:
    chunks: list[tuple[SequenceState, int]] = field(default_factory=list)  # (request, tokens to feed)
    preempted: list[SequenceState] = field(default_factory=list)


class Scheduler:
    def __init__(self, blocks: KVBlockManager, max_num_batched_tokens: int, max_num_seqs: int) -> None:
        for name, v in (("max_num_batched_tokens", max_num_batched_tokens), ("max_num_seqs", max_num_seqs)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"Scheduler.{name}={v!r} is invalid: expected a positive integer")
        self.blocks = blocks
        self.max_num_batched_tokens = max_num_batched_tokens
        self.max_num_seqs = max_num_seqs
        self.waiting: deque[SequenceState] = deque()
        self.running: list[SequenceState] = []

    def add(self, seq: SequenceState) -> None:
        seq.status = WAITING
        self.waiting.append(seq)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def schedule(self) -> ScheduledStep:
        step = ScheduledStep()
        budget = self.max_num_batched_tokens
        free = self.blocks.num_free_blocks
        i = 0
        while i < len(self.running) and budget > 0:
            seq = self.running[i]
            n = min(seq.num_pending, budget)
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
        if step.preempted:
            return step  # blocks are short: admit nobody this step
        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:
            seq = self.waiting[0]
            n = min(seq.num_pending, budget)
            need = self._blocks_needed(seq, n)
            if need > free:
                break
            self.waiting.popleft()
            seq.status = RUNNING
            self.running.append(seq)
            free -= need
            budget -= n
            step.chunks.append((seq, n))
        return step

    def remove(self, seq: SequenceState) -> None:
        """Take ``seq`` out of the queues and free its KV blocks."""
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        self.blocks.free(seq.seq_id)

    def _blocks_needed(self, seq: SequenceState, n: int) -> int:
        known = self.blocks.has_sequence(seq.seq_id)
        return self.blocks.blocks_needed(seq.seq_id if known else None, n)

    def _preempt(self, seq: SequenceState) -> int:
        """Free ``seq``'s blocks and queue it first; returns the number of blocks freed."""
        before = self.blocks.num_free_blocks
        self.running.remove(seq)
        self.blocks.free(seq.seq_id)
        seq.num_computed = 0
        seq.num_prefill = len(seq.token_ids)
        seq.num_preemptions += 1
        seq.status = WAITING
        self.waiting.appendleft(seq)
        return self.blocks.num_free_blocks - before
