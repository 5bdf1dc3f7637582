"""What goes into the runtime (Request) and what comes out (TokenEvent, RequestOutput)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import torch

from tttv2.serve.runtime.errors import InvalidRequestError
from tttv2.serve.runtime.sampling_params import SamplingParams
from tttv2.serve.runtime.stop_conditions import StopConditions
from tttv2.serve.runtime.timings import RequestTimings


@dataclass(frozen=True)
class Request:
    """A prompt (token ids) and how to continue it. ``request_id`` defaults to one the
    engine assigns (``"req-<n>"``)."""

    prompt_ids: tuple[int, ...]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stop: StopConditions = field(default_factory=StopConditions)
    request_id: Hashable | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt_ids", as_token_ids(self.prompt_ids))
        if not isinstance(self.sampling, SamplingParams):
            raise TypeError(
                f"Request.sampling must be SamplingParams, got {type(self.sampling).__name__}"
            )
        if not isinstance(self.stop, StopConditions):
            raise TypeError(f"Request.stop must be StopConditions, got {type(self.stop).__name__}")


def as_token_ids(ids: Sequence[int] | torch.Tensor) -> tuple[int, ...]:
    """A non-empty tuple of token ids >= 0 from a list, tuple or 1-D integer tensor."""
    if isinstance(ids, torch.Tensor):
        if ids.dim() != 1 or ids.is_floating_point() or ids.is_complex():
            raise InvalidRequestError(
                f"prompt_ids must be a 1-D integer tensor, got {ids.dim()}-D {ids.dtype}"
            )
        ids = ids.tolist()
    if isinstance(ids, str | bytes) or not isinstance(ids, Sequence):
        raise InvalidRequestError(
            f"prompt_ids must be a sequence of token ids, got {type(ids).__name__}"
        )
    out = tuple(ids)
    if not out:
        raise InvalidRequestError("prompt_ids is empty: a request needs at least one prompt token")
    bad = [t for t in out if not isinstance(t, int) or isinstance(t, bool) or t < 0]
    if bad:
        raise InvalidRequestError(f"prompt_ids must be integers >= 0; got {bad[0]!r}")
    return out


@dataclass(frozen=True)
class TokenEvent:
    """One generated token of one request, in the order they are produced.

    ``text`` is the piece of text this token releases (``""`` without a detokenizer, while
    a multi-byte character is incomplete, or while the text could still turn into a stop
    string); joining every event's ``text`` gives the final text. The last event of a
    request has ``finished=True`` and carries the whole ``output``. With
    ``SamplingParams.logprobs`` set, ``logprob`` is the token's log-probability and
    ``top_logprobs`` the ``(token_id, logprob)`` pairs of the most likely tokens, most
    likely first."""

    request_id: Hashable
    token_id: int
    index: int
    text: str
    time: float
    finished: bool = False
    finish_reason: str | None = None
    output: RequestOutput | None = None
    logprob: float | None = None
    top_logprobs: tuple[tuple[int, float], ...] = ()


@dataclass
class RequestOutput:
    """The state of a request: generated ``token_ids``, ``text`` (``None`` without a
    detokenizer), ``finish_reason`` (``None`` while running; ``"stop"``, ``"length"``,
    ``"context"``, ``"abort"`` or ``"error"``), ``stop_reason`` (the EOS id or stop string
    that matched), timings, and for ``"error"`` the message in ``error`` (e.g. the logits
    were NaN, or the model raised on this request's pass)."""

    request_id: Hashable
    prompt_ids: tuple[int, ...]
    token_ids: list[int]
    text: str | None
    finish_reason: str | None
    stop_reason: int | str | None
    timings: RequestTimings
    num_preemptions: int = 0
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None
