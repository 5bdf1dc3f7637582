"""Errors of the generation runtime. Request validation errors are
:class:`tttv2.core.errors.InputError`\\ s (bad input from outside: front ends report them as one
line), so they are also ``ValueError``\\ s and ``TTTv2Error``\\ s."""

from __future__ import annotations

from typing import Any

from tttv2.core.errors import InputError, TTTv2Error


class InvalidParameterError(InputError, TTTv2Error, ValueError):
    """A sampling, stopping or engine parameter is out of range; names the field, the bad
    value and what is valid."""

    def __init__(self, owner: str, field: str, value: Any, expected: str) -> None:
        self.owner = owner
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"{owner}.{field}={value!r} is invalid: expected {expected}")


class InvalidRequestError(InputError, TTTv2Error, ValueError):
    """A request cannot be admitted (prompt too long for the context, token id outside the
    vocabulary, stop strings without a detokenizer, duplicate request id, ...)."""


class SamplingError(TTTv2Error):
    """Some logits rows have no valid distribution (NaN or infinite logits, or a temperature
    so small that logits / temperature overflow). ``failures`` maps each such row's index
    to what went wrong; ``tokens`` has the sampled token of every other row (``None`` for
    the failed ones)."""

    def __init__(self, failures: dict[int, str], tokens: list[int | None]) -> None:
        self.failures = failures
        self.tokens = tokens
        rows = ", ".join(f"row {i}: {m}" for i, m in sorted(failures.items()))
        super().__init__(f"sampling failed for {len(failures)} of {len(tokens)} rows ({rows})")


class RequestFailedError(TTTv2Error):
    """A request ended with ``finish_reason="error"`` (raised by ``stream``); ``output``
    is its :class:`RequestOutput`, whose ``error`` says why."""

    def __init__(self, output: object, message: str) -> None:
        self.output = output
        super().__init__(message)
