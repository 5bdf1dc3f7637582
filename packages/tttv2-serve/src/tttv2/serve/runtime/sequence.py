"""SequenceState: everything the runtime tracks for one request while it runs."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from tttv2.serve.runtime.detokenizer import Detokenize
from tttv2.serve.runtime.request import Request, RequestOutput, TokenEvent
from tttv2.serve.runtime.sampler import SamplingRow
from tttv2.serve.runtime.stop_checker import StopChecker
from tttv2.serve.runtime.timings import RequestTimings
from tttv2.serve.runtime.token_logprobs import TokenLogprobs

WAITING, RUNNING, FINISHED = "waiting", "running", "finished"


@dataclass(frozen=True)
class SequenceMark:
    """A request's output state at one moment (see :meth:`SequenceState.mark`)."""

    num_tokens: int
    num_times: int
    status: str
    finish_reason: str | None
    stop_reason: int | str | None
    error: str | None
    finished_at: float | None
    checker: Any


class SequenceState:
    """A request inside the runtime.

    ``token_ids`` is prompt + output. ``num_computed`` of them have keys and values in the
    KV cache; the rest (the prompt, or the last sampled token, or everything after a
    preemption) are fed in the next passes. When a pass reaches the end of ``token_ids``
    its last logits row gives the next token.
    """

    def __init__(
        self,
        request: Request,
        request_id: object,
        seq_id: int,
        context_limit: int,
        detokenize: Detokenize | None,
        device: torch.device,
        callback: Callable[[TokenEvent], None] | None = None,
    ) -> None:
        self.request = request
        self.request_id = request_id
        self.seq_id = seq_id
        self.token_ids: list[int] = list(request.prompt_ids)
        self.prompt_len = len(request.prompt_ids)
        self.num_computed = 0
        self.num_prefill = self.prompt_len  # tokens fed as prefill (all of them after a preemption)
        self.status = WAITING
        self.finish_reason: str | None = None
        self.stop_reason: int | str | None = None
        self.error: str | None = None
        self.num_preemptions = 0
        self.callback = callback
        self.events: deque[TokenEvent] | None = None  # set while someone streams this request
        self.timings = RequestTimings(arrival=time.perf_counter())
        self.checker = StopChecker(request.stop, request.prompt_ids, context_limit, detokenize)
        self.has_text = detokenize is not None
        seed = request.sampling.seed
        self.generator = (
            torch.Generator(device=device).manual_seed(seed) if seed is not None else None
        )

    @property
    def output_ids(self) -> list[int]:
        return self.token_ids[self.prompt_len :]

    @property
    def num_output(self) -> int:
        return len(self.token_ids) - self.prompt_len

    @property
    def num_pending(self) -> int:
        """Tokens not yet in the KV cache."""
        return len(self.token_ids) - self.num_computed

    @property
    def finished(self) -> bool:
        return self.status == FINISHED

    def sampling_row(self, extra_output: list[int] | None = None) -> SamplingRow:
        output = self.output_ids + (extra_output or [])
        return SamplingRow(self.request.sampling, self.generator, self.request.prompt_ids, output)

    def append(
        self, token_id: int, now: float, logprobs: TokenLogprobs | None = None
    ) -> TokenEvent:
        """Add a generated token, check the stop conditions, return its event (with the
        token's log-probabilities when given). All or nothing: if the stop check raises,
        the request is left as it was."""
        mark = self.mark()
        try:
            self.token_ids.append(token_id)
            self.timings.token_times.append(now)
            text, reason, stop_reason = self.checker.add(token_id, self.num_output)
            if reason is not None:
                self.mark_finished(reason, stop_reason, now)
            return TokenEvent(
                request_id=self.request_id,
                token_id=token_id,
                index=self.num_output - 1,
                text=text,
                time=now,
                finished=reason is not None,
                finish_reason=reason,
                output=self.output() if reason is not None else None,
                logprob=None if logprobs is None else logprobs.logprob,
                top_logprobs=() if logprobs is None else logprobs.top,
            )
        except BaseException:
            self.rollback(mark)
            raise

    def mark(self) -> SequenceMark:
        """What :meth:`rollback` needs to undo later appends and finishing."""
        return SequenceMark(
            len(self.token_ids),
            len(self.timings.token_times),
            self.status,
            self.finish_reason,
            self.stop_reason,
            self.error,
            self.timings.finished,
            self.checker.mark(),
        )

    def rollback(self, mark: SequenceMark) -> None:
        del self.token_ids[mark.num_tokens :]
        del self.timings.token_times[mark.num_times :]
        self.status, self.finish_reason, self.stop_reason = (
            mark.status,
            mark.finish_reason,
            mark.stop_reason,
        )
        self.error, self.timings.finished = mark.error, mark.finished_at
        self.checker.rollback(mark.checker)

    def mark_finished(self, reason: str, stop_reason: int | str | None, now: float) -> None:
        self.status = FINISHED
        self.finish_reason = reason
        self.stop_reason = stop_reason
        self.timings.finished = now

    def mark_failed(self, message: str, now: float) -> None:
        """End the request with ``finish_reason="error"`` and ``message``."""
        try:
            self.checker.finish()  # releases held-back text; its detokenizer may be what failed
        except Exception:  # noqa: BLE001 - the request is ending with an error already
            pass
        self.mark_finished("error", None, now)
        self.error = message

    def output(self) -> RequestOutput:
        return RequestOutput(
            request_id=self.request_id,
            prompt_ids=self.request.prompt_ids,
            token_ids=self.output_ids,
            text=self.checker.text[: self.checker.released] if self.has_text else None,
            finish_reason=self.finish_reason,
            stop_reason=self.stop_reason,
            timings=self.timings,
            num_preemptions=self.num_preemptions,
            error=self.error,
        )
