"""SpeculativeDecoder: a small draft model proposes k tokens, the target checks them all
in one pass (mode SPECULATIVE: k+1 query tokens per sequence, logits for all of them).

A round, for every running request (they are batched in each pass):

0. new requests: the target prefills the prompt but its last token (a PREFILL pass);
1. the draft feeds the tokens it has not cached yet (the whole prompt at first, then the
   one or two tokens the last round added) and samples ``d_1``, then ``k - 1`` decode
   passes sample ``d_2 .. d_k``;
2. the target feeds the last token plus ``d_1 .. d_k`` and returns logits for all
   ``k + 1`` of them;
3. drafts are accepted (greedy: while they match the target's argmax; sampling:
   :func:`verify_sampled`), followed by the target's own next token;
4. both caches are truncated back to the accepted tokens (``KVBlockManager.truncate``).

Greedy output is identical to the target's greedy output alone; sampled output has the
target's distribution. Each request reserves, at admission, the KV blocks of its longest
possible sequence in both pools, so a round never runs out of blocks and nothing is
preempted; requests that do not fit wait. Prompts are prefilled whole (no chunking).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import torch

from tttv2.core.modes import ExecutionMode
from tttv2.serve.runtime.detokenizer import Detokenize
from tttv2.serve.runtime.engine import probe_vocab_size, resolve_max_seq_len, resolve_vocab_size
from tttv2.serve.runtime.engine_base import EngineBase, model_attribute
from tttv2.serve.runtime.interface import check_causal_lm
from tttv2.serve.runtime.request import TokenEvent
from tttv2.serve.runtime.runner import Chunk, ModelRunner
from tttv2.serve.runtime.sampler import draw, probabilities
from tttv2.serve.runtime.sequence import RUNNING, WAITING, SequenceState
from tttv2.serve.runtime.speculative_sampling import verify_greedy, verify_sampled
from tttv2.serve.runtime.timings import EngineStats


@dataclass
class SpeculativeStats:
    rounds: int = 0  # (request, round) pairs
    proposed: int = 0  # draft tokens proposed
    accepted: int = 0  # draft tokens accepted
    emitted: int = 0  # tokens emitted (accepted + the target's own)
    target_passes: int = 0
    draft_passes: int = 0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.proposed if self.proposed else 0.0

    @property
    def tokens_per_round(self) -> float:
        """Tokens a request gains per target pass (1 without speculation)."""
        return self.emitted / self.rounds if self.rounds else 0.0


class SpeculativeDecoder(EngineBase):
    """``SpeculativeDecoder(target, draft, k, num_blocks=...)``: same request API as
    :class:`LLMEngine` (add_request / step / run_until_done / generate / stream).

    ``num_blocks`` is the target's KV budget, ``draft_num_blocks`` the draft's (default:
    the same). The target must support mode SPECULATIVE (e.g. the ``multi_mode``
    strategy); the draft needs only prefill and decode. ``max_seq_len`` and ``vocab_size``
    are checked against the target as in :class:`LLMEngine`; the context limit is also
    capped at the draft's ``max_seq_len`` (the draft sees every token the target does)."""

    def __init__(
        self,
        target: Any,
        draft: Any,
        k: int = 4,
        *,
        num_blocks: int,
        draft_num_blocks: int | None = None,
        block_size: int = 16,
        max_seq_len: int | None = None,
        max_num_seqs: int = 64,
        detokenize: Detokenize | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        vocab_size: int | None = None,
    ) -> None:
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"SpeculativeDecoder.k={k!r} is invalid: expected an integer >= 1")
        if not isinstance(max_num_seqs, int) or max_num_seqs < 1:
            raise ValueError(
                f"SpeculativeDecoder.max_num_seqs={max_num_seqs!r} is invalid: expected an integer >= 1"
            )
        check_causal_lm(target, "target")
        check_causal_lm(draft, "draft")
        max_seq_len = resolve_max_seq_len(target, max_seq_len, "SpeculativeDecoder")
        draft_limit = model_attribute(draft, "max_seq_len")
        if draft_limit is not None:
            max_seq_len = min(max_seq_len, draft_limit)
        draft_num_blocks = num_blocks if draft_num_blocks is None else draft_num_blocks
        self.k = k
        self.target = ModelRunner(
            target, num_blocks, block_size, max_seq_len, device, dtype, EngineStats(), "target"
        )
        self.draft = ModelRunner(
            draft,
            draft_num_blocks,
            block_size,
            max_seq_len,
            self.target.device,
            dtype,
            EngineStats(),
            "draft",
        )
        self.target.require(ExecutionMode.SPECULATIVE, "verifying draft tokens")
        self.target.require(ExecutionMode.PREFILL, "prefilling prompts")
        vocab_size = resolve_vocab_size(self.target, vocab_size, "SpeculativeDecoder")
        draft_vocab = model_attribute(draft, "vocab_size") or probe_vocab_size(self.draft)
        if draft_vocab != vocab_size:
            raise ValueError(
                f"draft vocabulary ({draft_vocab}) differs from the target's ({vocab_size})"
            )
        limit = min(max_seq_len, num_blocks * block_size, draft_num_blocks * block_size)
        super().__init__(detokenize, limit, self.target.device, vocab_size)
        self.target.stats = self.stats
        self.draft_stats = self.draft.stats
        self.spec_stats = SpeculativeStats()
        self.max_num_seqs = max_num_seqs
        self.waiting: deque[SequenceState] = deque()
        self.running: list[SequenceState] = []
        self._reserved: dict[int, int] = {}  # seq_id -> blocks promised in each pool
        self._free_target = num_blocks
        self._free_draft = draft_num_blocks

    # -- admission --------------------------------------------------------------------
    def _max_total(self, seq: SequenceState) -> int:
        """The longest prompt + output this request can reach."""
        m = seq.request.stop.max_new_tokens
        return self.context_limit if m is None else min(self.context_limit, seq.prompt_len + m)

    def _enqueue(self, seq: SequenceState) -> None:
        seq.status = WAITING
        self.waiting.append(seq)

    def _admit(self) -> None:
        bs = self.target.blocks.block_size
        while self.waiting and len(self.running) < self.max_num_seqs:
            seq = self.waiting[0]
            need = -(-self._max_total(seq) // bs)
            if need > self._free_target or need > self._free_draft:
                return
            self.waiting.popleft()
            self._reserved[seq.seq_id] = need
            self._free_target -= need
            self._free_draft -= need
            seq.status = RUNNING
            self.running.append(seq)

    def _drop(self, seq: SequenceState) -> None:
        if seq in self.waiting:
            self.waiting.remove(seq)
        if seq in self.running:
            self.running.remove(seq)
        self.target.free(seq.seq_id)
        self.draft.free(seq.seq_id)
        need = self._reserved.pop(seq.seq_id, 0)
        self._free_target += need
        self._free_draft += need

    # -- a round ----------------------------------------------------------------------
    def step(self) -> list[TokenEvent]:
        self._admit()
        seqs = list(self.running)
        if not seqs:
            return []
        self.stats.steps += 1
        now = time.perf_counter()
        for seq in seqs:
            if seq.timings.first_scheduled is None:
                seq.timings.first_scheduled = now
        self._prefill_new(seqs)
        ks = [min(self.k, self._max_total(s) - len(s.token_ids) - 1) for s in seqs]
        drafts, q = self._propose(seqs, ks)
        chunks = [
            Chunk(s.seq_id, s.token_ids[-1:] + d, len(d) + 1, generated=True)
            for s, d in zip(seqs, drafts, strict=True)
        ]
        target_logits = self.target.run(chunks, ExecutionMode.SPECULATIVE)
        self.spec_stats.target_passes += 1
        events: list[TokenEvent] = []
        now = time.perf_counter()
        for seq, d, q_seq, logits in zip(seqs, drafts, q, target_logits, strict=True):
            assert logits is not None
            p = probabilities(logits, [seq.sampling_row(d[:j]) for j in range(len(d) + 1)])
            if seq.request.sampling.greedy:
                accepted, nxt = verify_greedy(p.argmax(dim=-1).tolist(), d)
            else:
                accepted, nxt = verify_sampled(
                    p, torch.stack(q_seq) if d else p[:0], d, seq.generator
                )
            self.spec_stats.rounds += 1
            self.spec_stats.proposed += len(d)
            self.spec_stats.accepted += accepted
            for token in [*d[:accepted], nxt]:
                events.append(seq.append(token, now))
                self.spec_stats.emitted += 1
                if seq.finished:
                    break
            if seq.finished:
                self._drop(seq)
            else:
                self.target.truncate(seq.seq_id, len(seq.token_ids) - 1)
                self.draft.truncate(
                    seq.seq_id, min(self.draft.num_cached(seq.seq_id), len(seq.token_ids) - 1)
                )
        self._dispatch(events)
        return events

    def _prefill_new(self, seqs: list[SequenceState]) -> None:
        """Bring new requests to the state every round starts from: the target has cached
        all tokens but the last (one PREFILL pass for all of them, no logits)."""
        fresh = [s for s in seqs if self.target.num_cached(s.seq_id) < len(s.token_ids) - 1]
        if fresh:
            chunks = [
                Chunk(s.seq_id, s.token_ids[self.target.num_cached(s.seq_id) : -1], 0)
                for s in fresh
            ]
            self.target.run(chunks, ExecutionMode.PREFILL)

    def _propose(
        self, seqs: list[SequenceState], ks: list[int]
    ) -> tuple[list[list[int]], list[list[torch.Tensor]]]:
        """Draft tokens per request (``ks[i]`` of them) and the draft distributions they
        were drawn from."""
        drafts: list[list[int]] = [[] for _ in seqs]
        dists: list[list[torch.Tensor]] = [[] for _ in seqs]
        active = [i for i, k in enumerate(ks) if k > 0]
        chunks = [
            Chunk(seqs[i].seq_id, seqs[i].token_ids[self.draft.num_cached(seqs[i].seq_id) :])
            for i in active
        ]
        while active:
            logits = self.draft.run(chunks)
            self.spec_stats.draft_passes += 1
            rows = torch.cat([x for x in logits if x is not None])
            probs = probabilities(rows, [seqs[i].sampling_row(drafts[i]) for i in active])
            for row, i in zip(probs, active, strict=True):
                seq = seqs[i]
                token = (
                    int(row.argmax()) if seq.request.sampling.greedy else draw(row, seq.generator)
                )
                drafts[i].append(token)
                dists[i].append(row)
            active = [i for i in active if len(drafts[i]) < ks[i]]
            chunks = [Chunk(seqs[i].seq_id, [drafts[i][-1]]) for i in active]
        return drafts, dists
