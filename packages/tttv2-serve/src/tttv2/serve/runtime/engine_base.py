"""What every generation engine offers on top of its own ``step()``: admitting requests
(with validation), running until done, ``generate``, streaming, callbacks, aborting and
collecting outputs. :class:`LLMEngine` and :class:`SpeculativeDecoder` share it."""

from __future__ import annotations

import itertools
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

import torch

from tttv2.serve.runtime.detokenizer import Detokenize
from tttv2.serve.runtime.errors import InvalidRequestError, RequestFailedError
from tttv2.serve.runtime.request import Request, RequestOutput, TokenEvent
from tttv2.serve.runtime.sampling_params import SamplingParams
from tttv2.serve.runtime.sequence import SequenceState
from tttv2.serve.runtime.stop_conditions import StopConditions
from tttv2.serve.runtime.timings import EngineStats

PromptLike = Request | Sequence[int] | torch.Tensor
Callback = Callable[[TokenEvent], None]


def model_attribute(model: Any, name: str) -> int | None:
    """``model.<name>`` or ``model.spec.<name>`` when it is a positive int, else None."""
    for owner in (model, getattr(model, "spec", None)):
        value = getattr(owner, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def check_prompt_list(prompts: object) -> None:
    """Raise ``TypeError`` saying what ``generate`` accepts when ``prompts`` is one prompt
    or a tensor instead of a list of prompts."""
    accepted = "generate() takes a list of prompts, each a list of token ids, a 1-D integer tensor or a Request"
    if isinstance(prompts, torch.Tensor):
        shape = list(prompts.shape)
        if prompts.dim() == 2:
            hint = f"for a batch of {shape[0]} prompts of {shape[1]} tokens pass list(prompts) (rows as prompts)"
        else:
            hint = "for one prompt pass [prompt]; for a [batch, seq_len] tensor pass list(prompts)"
        raise TypeError(f"{accepted}; got a {prompts.dim()}-D tensor of shape {shape}: {hint}")
    if isinstance(prompts, Request) or (
        isinstance(prompts, Sequence) and prompts and isinstance(prompts[0], int)
    ):
        raise TypeError(f"{accepted}; got a single prompt: pass [prompt]")


class EngineBase(ABC):
    def __init__(
        self,
        detokenize: Detokenize | None,
        context_limit: int,
        device: torch.device,
        vocab_size: int | None,
    ) -> None:
        if detokenize is not None and not callable(detokenize):
            raise TypeError(f"detokenize must be a callable list[int] -> str, got {detokenize!r}")
        self.detokenize = detokenize
        self.context_limit = context_limit
        self.device = device
        self.vocab_size = vocab_size
        self.stats = EngineStats()
        self._states: dict[Hashable, SequenceState] = {}
        self._request_numbers = itertools.count()
        self._seq_ids = itertools.count()

    # -- what an engine implements -----------------------------------------------------
    @abstractmethod
    def step(self) -> list[TokenEvent]:
        """Run one scheduling step; the tokens it produced, in order."""

    @abstractmethod
    def _enqueue(self, seq: SequenceState) -> None:
        """Queue a validated request."""

    @abstractmethod
    def _drop(self, seq: SequenceState) -> None:
        """Take an unfinished request out of the engine and free its cache blocks."""

    def _context_note(self) -> str:
        return f"the context limit is {self.context_limit} tokens"

    # -- requests ---------------------------------------------------------------------
    def add_request(
        self,
        request: PromptLike,
        sampling: SamplingParams | None = None,
        stop: StopConditions | None = None,
        *,
        callback: Callback | None = None,
    ) -> Hashable:
        """Queue a request (a :class:`Request`, or prompt token ids with ``sampling`` and
        ``stop``); it joins the running batch at a later step. Returns its request id.
        ``callback`` receives each of its :class:`TokenEvent` as it is produced."""
        return self.add_requests([request], sampling, stop, callback=callback)[0]

    def add_requests(
        self,
        requests: Sequence[PromptLike],
        sampling: SamplingParams | None = None,
        stop: StopConditions | None = None,
        *,
        callback: Callback | None = None,
    ) -> list[Hashable]:
        """Queue several requests at once, atomically: every one is checked first, and if
        any is invalid (:class:`InvalidRequestError`, ``TypeError``) none is queued.
        ``sampling``/``stop`` apply to the requests given as token ids. Returns their ids."""
        check_prompt_list(requests)
        checked: list[tuple[Hashable, Request]] = []
        taken: set[Hashable] = set()
        for request in requests:
            rid, request = self._check_request(request, sampling, stop)
            if rid in taken:
                raise InvalidRequestError(f"request id {rid!r} appears twice in one submission")
            taken.add(rid)
            checked.append((rid, request))
        for rid, request in checked:
            seq_id = next(self._seq_ids)
            seq = SequenceState(
                request, rid, seq_id, self.context_limit, self.detokenize, self.device, callback
            )
            self._states[rid] = seq
            self._enqueue(seq)
        return [rid for rid, _ in checked]

    def _check_request(
        self, request: PromptLike, sampling: SamplingParams | None, stop: StopConditions | None
    ) -> tuple[Hashable, Request]:
        """The request's id and the :class:`Request`, or the error refusing it."""
        if not isinstance(request, Request):
            # Request.__post_init__ turns any PromptLike into its tuple of token ids
            request = Request(request, sampling or SamplingParams(), stop or StopConditions())  # type: ignore[arg-type]
        elif sampling is not None or stop is not None:
            raise InvalidRequestError("pass sampling/stop inside the Request, not next to it")
        rid = (
            request.request_id
            if request.request_id is not None
            else f"req-{next(self._request_numbers)}"
        )
        if rid in self._states:
            raise InvalidRequestError(f"request id {rid!r} is already in use")
        n = len(request.prompt_ids)
        if n >= self.context_limit:
            raise InvalidRequestError(
                f"request {rid!r}: the prompt has {n} tokens but {self._context_note()}; "
                f"prompts may have at most {self.context_limit - 1} tokens (one must be left to generate)"
            )
        if self.vocab_size is not None:
            bad = [t for t in request.prompt_ids if t >= self.vocab_size]
            if bad:
                raise InvalidRequestError(
                    f"request {rid!r}: token id {bad[0]} is outside the vocabulary (size {self.vocab_size})"
                )
        if request.stop.stop_strings and self.detokenize is None:
            raise InvalidRequestError(
                f"request {rid!r} has stop strings; give the engine a detokenize callable to match them"
            )
        return rid, request

    def abort(self, request_id: Hashable) -> RequestOutput:
        """Stop a request now (``finish_reason="abort"``) and free its cache blocks."""
        seq = self._get(request_id)
        if not seq.finished:
            self._drop(seq)
            seq.checker.finish()
            seq.mark_finished("abort", None, time.perf_counter())
        return seq.output()

    def has_unfinished(self) -> bool:
        return any(not s.finished for s in self._states.values())

    def output(self, request_id: Hashable) -> RequestOutput:
        """The request's state so far (it stays in the engine)."""
        return self._get(request_id).output()

    def pop_output(self, request_id: Hashable) -> RequestOutput:
        """The output of a finished request, which the engine then forgets."""
        seq = self._get(request_id)
        if not seq.finished:
            raise InvalidRequestError(f"request {request_id!r} has not finished")
        del self._states[request_id]
        return seq.output()

    # -- driving ----------------------------------------------------------------------
    def run_until_done(self) -> list[RequestOutput]:
        """Step until every request has finished; pop and return every finished output, in
        the order the requests were added."""
        with torch.inference_mode():  # held across the steps, not entered by each
            while self.has_unfinished():
                self.step()
        return [self.pop_output(rid) for rid, s in list(self._states.items()) if s.finished]

    def generate(
        self,
        prompts: Sequence[PromptLike],
        sampling: SamplingParams | None = None,
        stop: StopConditions | None = None,
    ) -> list[RequestOutput]:
        """Add ``prompts`` (a list of Requests, or of token id lists / 1-D integer tensors
        sharing ``sampling``/``stop``), step until they have finished, and return their
        outputs in the same order. A ``[batch, seq_len]`` tensor is passed as
        ``list(prompts)``. Adding is atomic (see :meth:`add_requests`). A request that
        fails (``finish_reason="error"``) is returned with the others, its message in
        ``error``."""
        check_prompt_list(prompts)
        ids = self.add_requests(prompts, sampling, stop)
        with torch.inference_mode():  # held across the steps, not entered by each
            while any(not self._states[rid].finished for rid in ids):
                self.step()
        return [self.pop_output(rid) for rid in ids]

    def stream(
        self,
        request: PromptLike | Hashable,
        sampling: SamplingParams | None = None,
        stop: StopConditions | None = None,
    ) -> Iterator[TokenEvent]:
        """Add a request (or take the id of one already added) and iterate over its tokens
        as they come; the engine steps as needed, so other requests advance too. The last
        event has ``finished=True`` and the ``output``; the engine then forgets the request.
        If the request fails (``finish_reason="error"``) the iterator raises
        :class:`RequestFailedError` carrying the output and its message."""
        if isinstance(request, Request | list | tuple | torch.Tensor):
            rid = self.add_request(request, sampling, stop)
        else:
            rid = request
        seq = self._get(rid)
        if seq.events is None:
            seq.events = deque()
        return self._stream(rid, seq)

    def _stream(self, rid: Hashable, seq: SequenceState) -> Iterator[TokenEvent]:
        while True:
            while seq.events:
                event = seq.events.popleft()
                yield event
                if event.finished:
                    self._states.pop(rid, None)
                    return
            if seq.finished:  # aborted or failed
                self._states.pop(rid, None)
                if seq.finish_reason == "error":
                    raise RequestFailedError(seq.output(), f"request {rid!r} failed: {seq.error}")
                return
            self.step()

    # -- helpers ----------------------------------------------------------------------
    def _dispatch(self, events: list[TokenEvent]) -> None:
        """Queue events for streams, count finished requests, then call callbacks (after
        every state change, so a raising callback leaves the engine consistent)."""
        self.stats.generated_tokens += len(events)
        for event in events:
            seq = self._states[event.request_id]
            if seq.events is not None:
                seq.events.append(event)
            if event.finished:
                self.stats.finished_requests += 1
        for event in events:
            callback = self._states[event.request_id].callback
            if callback is not None:
                callback(event)

    def _fail(self, seq: SequenceState, message: str) -> None:
        """End ``seq`` with ``finish_reason="error"`` and free its cache blocks."""
        self._drop(seq)
        seq.mark_failed(message, time.perf_counter())
        self.stats.failed_requests += 1

    def _get(self, request_id: Hashable) -> SequenceState:
        try:
            return self._states[request_id]
        except (KeyError, TypeError):
            raise InvalidRequestError(f"no request with id {request_id!r} in this engine") from None
