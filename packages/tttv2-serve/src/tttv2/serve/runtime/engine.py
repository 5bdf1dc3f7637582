"""LLMEngine: continuous batching over a paged KV cache.

Each :meth:`~LLMEngine.step` asks the scheduler which requests run and how many tokens
each feeds (prompt chunks, one decode token, or a recomputation after preemption), runs
them through the model (see :class:`ModelRunner` for the modes), samples one token for
every request whose pass reached the end of its tokens, applies the stop conditions and
frees the KV blocks of requests that finished.

A step is a transaction. Failures that belong to one request end that request alone
(``finish_reason="error"``, the message in ``RequestOutput.error``): a logits row with no
valid distribution (NaN/inf logits, a temperature so small the scaled logits overflow),
or its stop check raising. Any other exception (the model raising in a pass, anything
unexpected) rolls the step back to the snapshot taken before it (queues, requests'
progress, device and host block bookkeeping, counters, seeded generators) and the step is
run again with every request in a pass of its own and sampled alone: the requests whose
pass or sampling raises again end with ``"error"``, the others continue (a fault that does
not recur ends none). ``KeyboardInterrupt`` and other non-``Exception`` exceptions roll the
step back and propagate: the engine is as before the step and ``step()`` may be called
again. Callbacks run after the step has committed; an exception from one propagates.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import torch

from tttv2.core.errors import TTTv2Error
from tttv2.core.modes import ExecutionMode
from tttv2.serve.runtime.detokenizer import Detokenize
from tttv2.serve.runtime.engine_base import EngineBase, model_attribute
from tttv2.serve.runtime.errors import InvalidParameterError
from tttv2.serve.runtime.inference_mode import inference_mode_unless_on
from tttv2.serve.runtime.interface import check_causal_lm
from tttv2.serve.runtime.kv_swap import HostKVPool
from tttv2.serve.runtime.request import TokenEvent
from tttv2.serve.runtime.runner import Chunk, ModelRunner
from tttv2.serve.runtime.sampler import SamplingRow, sample_rows
from tttv2.serve.runtime.scheduler import Scheduler, SchedulerSnapshot
from tttv2.serve.runtime.sequence import SequenceMark, SequenceState
from tttv2.serve.runtime.timings import EngineStats
from tttv2.serve.runtime.token_logprobs import TokenLogprobs, token_logprobs


def resolve_max_seq_len(model: Any, max_seq_len: int | None, owner: str = "LLMEngine") -> int:
    """The engine's ``max_seq_len``: the caller's, else the model's. The caller may lower
    the model's limit, never raise it (the model has no positions beyond it)."""
    limit = model_attribute(model, "max_seq_len")
    value = max_seq_len if max_seq_len is not None else limit
    if value is None:
        raise ValueError(
            f"max_seq_len is needed: {type(model).__name__} has no max_seq_len (nor spec.max_seq_len)"
        )
    if not isinstance(value, int) or isinstance(value, bool) or value <= 1:
        raise InvalidParameterError(owner, "max_seq_len", value, "an integer >= 2")
    if limit is not None and value > limit:
        raise InvalidParameterError(
            owner,
            "max_seq_len",
            value,
            f"at most the model's max_seq_len ({limit}): {type(model).__name__} has no positions beyond it",
        )
    return value


def probe_vocab_size(runner: ModelRunner) -> int:
    """Learn the vocabulary size from a one-token pass (its cache entry is freed)."""
    probe_id = -1
    try:
        logits = runner.forward([Chunk(probe_id, [0], 1)], ExecutionMode.PREFILL)[0]
    finally:
        runner.free(probe_id)
    assert logits is not None
    return logits.shape[-1]


def resolve_vocab_size(
    runner: ModelRunner, vocab_size: int | None, owner: str = "LLMEngine"
) -> int:
    """The engine's ``vocab_size``: the model's (``model.vocab_size``,
    ``model.spec.vocab_size``, else the width of a one-token probe pass's logits). A
    caller's ``vocab_size`` must equal it: a smaller one would let the engine sample ids
    outside it, a larger one admit prompt ids the model cannot embed."""
    model_vocab = model_attribute(runner.model, "vocab_size") or probe_vocab_size(runner)
    if vocab_size is not None and vocab_size != model_vocab:
        raise InvalidParameterError(
            owner,
            "vocab_size",
            vocab_size,
            f"the model's vocabulary size {model_vocab} (the width of its logits), or None to take it from the model",
        )
    return model_vocab


def joined_rows(rows: list[torch.Tensor]) -> torch.Tensor:
    """``torch.cat(rows)``, as a view when the rows already lie one after another in one
    tensor (a decode pass's logits, every sequence asking its last row): copying 8 rows of
    a 49k vocabulary costs ~90 us on the machines here, the view a few."""
    first = rows[0]
    if len(rows) == 1:
        return first
    base, stride = first._base, first.stride()
    if base is None:
        return torch.cat(rows)
    expected, total = first.storage_offset(), 0
    for r in rows:
        if r._base is not base or r.stride() != stride or r.storage_offset() != expected:
            return torch.cat(rows)
        expected += r.shape[0] * stride[0]
        total += r.shape[0]
    return first.as_strided((total, *first.shape[1:]), stride)


@dataclass
class StepSnapshot:
    """What :meth:`LLMEngine.step` restores when a step fails part-way."""

    scheduler: SchedulerSnapshot
    stats: EngineStats
    generators: list[tuple[torch.Generator, torch.Tensor]]  # filled just before sampling
    outputs: list[
        tuple[SequenceState, SequenceMark]
    ]  # the scheduled requests, filled once scheduled


class LLMEngine(EngineBase):
    """Serve many requests at once with one model.

    ``num_blocks`` KV blocks of ``block_size`` tokens are the whole cache budget (the
    caller computes it, e.g. with the tttv2-hw memory planner). ``max_seq_len`` (default:
    ``model.max_seq_len`` or ``model.spec.max_seq_len``) may lower the model's limit but
    not raise it. ``max_num_batched_tokens`` is the per-step token budget (long prompts
    are prefilled in chunks of at most this), ``max_num_seqs`` the most requests running at
    once. ``long_prefill_token_threshold`` (default: a quarter of the budget) caps what one
    prompt takes of a step before the other running and waiting requests have had their
    share, so a short request is not kept waiting behind a long prompt; the budget they
    leave goes back to the prompt (``max_num_batched_tokens`` turns the cap off). See
    :class:`Scheduler`. ``swap_blocks`` (default: a quarter of ``num_blocks``; 0 turns
    swapping off) is the size, in blocks, of the host pool a preempted request's KV blocks
    are copied to, so it resumes without recomputing (allocated on the first preemption);
    a preemption that does not fit there recomputes. ``detokenize(ids) -> str`` enables
    text output and stop strings.
    ``vocab_size`` (default: ``model.vocab_size``, ``model.spec.vocab_size`` or a
    one-token probe pass) lets prompts be checked on admission; when given it must equal
    the model's."""

    def __init__(
        self,
        model: Any,
        num_blocks: int,
        *,
        block_size: int = 16,
        max_seq_len: int | None = None,
        max_num_batched_tokens: int = 512,
        max_num_seqs: int = 128,
        long_prefill_token_threshold: int | None = None,
        detokenize: Detokenize | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        vocab_size: int | None = None,
        swap_blocks: int | None = None,
    ) -> None:
        check_causal_lm(model)
        if swap_blocks is None:
            swap_blocks = (
                num_blocks // 4
                if isinstance(num_blocks, int) and not isinstance(num_blocks, bool)
                else 0
            )
        if isinstance(swap_blocks, bool) or not isinstance(swap_blocks, int) or swap_blocks < 0:
            raise InvalidParameterError(
                "LLMEngine", "swap_blocks", swap_blocks, "an integer >= 0 (0: no swapping)"
            )
        max_seq_len = resolve_max_seq_len(model, max_seq_len)
        self.runner = ModelRunner(
            model, num_blocks, block_size, max_seq_len, device, dtype, EngineStats()
        )
        vocab_size = resolve_vocab_size(self.runner, vocab_size)
        self.max_seq_len = max_seq_len
        super().__init__(
            detokenize, min(max_seq_len, num_blocks * block_size), self.runner.device, vocab_size
        )
        self.runner.stats = self.stats
        self.host_pool = HostKVPool(self.runner.cache, num_blocks, swap_blocks, self.stats)
        self.scheduler = Scheduler(
            self.runner.blocks,
            max_num_batched_tokens,
            max_num_seqs,
            long_prefill_token_threshold,
            host_pool=self.host_pool if self.host_pool.capacity else None,
            stats=self.stats,
        )
        self._snap: StepSnapshot | None = None

    @property
    def model(self) -> Any:
        return self.runner.model

    @property
    def num_free_blocks(self) -> int:
        return self.runner.blocks.num_free_blocks

    def _context_note(self) -> str:
        pool = self.runner.blocks.num_blocks * self.runner.blocks.block_size
        return (
            f"the context limit is {self.context_limit} tokens "
            f"(model max_seq_len {self.max_seq_len}, KV pool {pool} tokens)"
        )

    def _enqueue(self, seq: SequenceState) -> None:
        self.scheduler.add(seq)

    def _drop(self, seq: SequenceState) -> None:
        self.scheduler.remove(seq)

    def step(self) -> list[TokenEvent]:
        """One scheduling step, as a transaction (see the module docstring), in inference
        mode (entered here unless the caller holds it, as ``generate`` does): every tensor
        the engine makes or changes is made or changed in it. Callbacks run after it, in
        the caller's mode."""
        with inference_mode_unless_on():
            events = self._transaction()
        self._dispatch(events)
        return events

    def _transaction(self) -> list[TokenEvent]:
        """The step's events, committed (not yet dispatched)."""
        snap = self._snapshot()
        try:
            return self._step(isolate=False)
        except Exception:
            self._restore(snap)
        except BaseException:
            self._restore(snap)
            raise
        # the step failed in a way no single request owns: run it again, each request alone
        snap = self._snapshot()
        try:
            return self._step(isolate=True)
        except BaseException:
            self._restore(snap)
            raise

    # -- the transaction ----------------------------------------------------------------
    def _snapshot(self) -> StepSnapshot:
        self._snap = StepSnapshot(
            self.scheduler.snapshot(),
            copy.copy(self.stats),  # counters: a flat copy
            [],
            [],
        )
        return self._snap

    def _restore(self, snap: StepSnapshot) -> None:
        for seq, mark in snap.outputs:
            seq.rollback(mark)
        for generator, state in snap.generators:
            generator.set_state(state)
        vars(self.stats).update(vars(snap.stats))
        self.scheduler.restore(snap.scheduler)

    def _step(self, isolate: bool) -> list[TokenEvent]:
        scheduled = self.scheduler.schedule()
        self.stats.preemptions += len(scheduled.preempted)
        if not scheduled.chunks:
            if self.scheduler.waiting:
                raise TTTv2Error(
                    "scheduler could not admit the oldest waiting request into an empty batch"
                )
            return []
        self.stats.steps += 1
        if self._snap is not None:
            self._snap.outputs = [(seq, seq.mark()) for seq, _ in scheduled.chunks]
        now = time.perf_counter()
        chunks = []
        for seq, n in scheduled.chunks:
            if seq.timings.first_scheduled is None:
                seq.timings.first_scheduled = now
            start = seq.num_computed
            reaches_end = start + n == len(seq.token_ids)
            generated = start >= seq.num_prefill  # decode; otherwise prompt or recomputation
            chunks.append(
                Chunk(
                    seq.seq_id, seq.token_ids[start : start + n], 1 if reaches_end else 0, generated
                )
            )
        failed: dict[SequenceState, str] = {}
        if isolate:
            logits = self._run_each(scheduled.chunks, chunks, failed)
        else:
            logits = self.runner.run(chunks)
        ready: list[tuple[SequenceState, torch.Tensor]] = []
        for (seq, n), rows in zip(scheduled.chunks, logits, strict=True):
            if seq in failed:
                continue
            seq.num_computed += n
            if rows is not None:
                ready.append((seq, rows))
        for seq, message in failed.items():
            self._fail(seq, message)
        if not ready:
            return []
        sampling_rows = [seq.sampling_row() for seq, _ in ready]
        self._save_generators(sampling_rows)
        if isolate:
            tokens, failures = self._sample_each([rows for _, rows in ready], sampling_rows)
        else:
            tokens, failures = sample_rows(joined_rows([rows for _, rows in ready]), sampling_rows)
            failures = {i: f"sampling failed: {m}" for i, m in failures.items()}
        logprobs = self._logprobs(ready, tokens)
        now = time.perf_counter()
        events = []
        for i, ((seq, _), token) in enumerate(zip(ready, tokens, strict=True)):
            if token is None:
                self._fail(seq, failures[i])
                continue
            try:
                events.append(seq.append(token, now, logprobs[i]))
            except Exception as exc:  # the request's stop check (e.g. its detokenizer) raised
                self._fail(seq, f"checking the stop conditions raised {type(exc).__name__}: {exc}")
                continue
            if seq.finished:
                self.scheduler.remove(seq)
        return events

    @staticmethod
    def _logprobs(
        ready: list[tuple[SequenceState, torch.Tensor]], tokens: list[int | None]
    ) -> list[TokenLogprobs | None]:
        """Log-probabilities for the sampled rows whose requests ask for them (none for a
        row that failed to sample)."""
        wanted = [
            seq.request.sampling.logprobs if token is not None else None
            for (seq, _), token in zip(ready, tokens, strict=True)
        ]
        if all(k is None for k in wanted):
            return [None] * len(ready)
        batch = joined_rows([rows for _, rows in ready])
        return token_logprobs(batch, [t if t is not None else 0 for t in tokens], wanted)

    def _save_generators(self, rows: list[SamplingRow]) -> None:
        if self._snap is not None:
            self._snap.generators = [
                (r.generator, r.generator.get_state()) for r in rows if r.generator is not None
            ]

    def _run_each(
        self,
        scheduled: list[tuple[SequenceState, int]],
        chunks: list[Chunk],
        failed: dict[SequenceState, str],
    ) -> list[torch.Tensor | None]:
        """Each chunk in a pass of its own; a chunk whose pass raises marks its request
        failed (the runner undoes that pass's cache reservation)."""
        out: list[torch.Tensor | None] = []
        for (seq, _), chunk in zip(scheduled, chunks, strict=True):
            try:
                out.append(self.runner.run([chunk])[0])
            except Exception as exc:
                failed[seq] = f"the model raised {type(exc).__name__} on this request's pass: {exc}"
                out.append(None)
        return out

    def _sample_each(
        self, logits: list[torch.Tensor], rows: list[SamplingRow]
    ) -> tuple[list[int | None], dict[int, str]]:
        tokens: list[int | None] = []
        failures: dict[int, str] = {}
        for i, (row_logits, row) in enumerate(zip(logits, rows, strict=True)):
            try:
                (token,), bad = sample_rows(row_logits, [row])
            except Exception as exc:
                token, bad = None, {0: f"{type(exc).__name__}: {exc}"}
            tokens.append(token)
            if bad:
                failures[i] = f"sampling failed: {bad[0]}"
        return tokens, failures
