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
