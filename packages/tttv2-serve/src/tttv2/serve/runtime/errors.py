"""Errors of the generation runtime (both are ``ValueError``\\ s and ``TTTv2Error``\\ s)."""

from __future__ import annotations

from typing import Any

from tttv2.core.errors import TTTv2Error


class InvalidParameterError(TTTv2Error, ValueError):
    """A sampling, stopping or engine parameter is out of range; names the field, the bad
    value and what is valid."""

    def __init__(self, owner: str, field: str, value: Any, expected: str) -> None:
        self.owner = owner
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"{owner}.{field}={value!r} is invalid: expected {expected}")


class InvalidRequestError(TTTv2Error, ValueError):
    """A request cannot be admitted (prompt too long for the context, token id outside the
    vocabulary, stop strings without a detokenizer, duplicate request id, ...)."""
