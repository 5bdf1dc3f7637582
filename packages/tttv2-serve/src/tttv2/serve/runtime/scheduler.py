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
running request is preempted: its blocks are freed and it goes back to the front of the
queue, to be re-prefilled later from its prompt plus the tokens it had generated
("recompute"). Another request's blocks are never touched. A request alone always fits
(the engine refuses prompts the pool cannot hold), so the oldest request always advances.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from tttv2.core.kv_blocks import KVBlockManager
from tttv2.serve.runtime.errors import InvalidParameterError
from tttv2.serve.runtime.sequence import RUNNING, WAITING, SequenceState


def is_positive_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


@dataclass
class ScheduledStep:
    chunks: list[tuple[SequenceState, int]] = field(default_factory=list)  # (request, tokens to feed)
    preempted: list[SequenceState] = field(default_factory=list)


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
    ) -> None:
        if long_prefill_token_threshold is None and is_positive_int(max_num_batched_tokens):
            long_prefill_token_threshold = default_long_prefill_token_threshold(max_num_batched_tokens)
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
        self.long_prefill_token_threshold = long_prefill_token_threshold
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
        """Take ``seq`` out of the queues and free its KV blocks."""
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        self.blocks.free(seq.seq_id)

    def _blocks_needed(self, seq: SequenceState, n: int) -> int:
        known = self.blocks.has_sequence(seq.seq_id)
        return self.blocks.blocks_needed(seq.seq_id if known else None, n)

    def _room(self, seq: SequenceState, n: int, free: int) -> int:
        """Tokens ``seq`` can take beyond ``n`` in the blocks it will hold after ``n``
        tokens plus ``free`` more."""
        known = self.blocks.has_sequence(seq.seq_id)
        cached = self.blocks.seq_len(seq.seq_id) if known else 0
        held = len(self.blocks.block_table(seq.seq_id)) if known else 0
        blocks_after_n = held + self._blocks_needed(seq, n)
        return (blocks_after_n + free) * self.blocks.block_size - cached - n

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
