"""Errors raised by TTTv2. Every error is a subclass of :class:`TTTv2Error`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class TTTv2Error(Exception):
    """Base class of every error TTTv2 raises on purpose."""


class InputError(TTTv2Error, ValueError):
    """Bad input from outside the program, found by validation: a checkpoint folder, its
    ``config.json`` or safetensors files, a request or its sampling values, a command-line
    value, a device profile or parameter file.

    The message is one sentence naming the input, the field, the bad value and what would be
    valid. Front ends (the ``tttv2`` command line) report exactly these as one line and exit
    status 2; any other exception is a bug and keeps its traceback. Validation errors of the
    library subclass it; a new kind of bad input gets a subclass, not a new ``except``.
    """


class SpecError(InputError, TTTv2Error, ValueError):
    """A spec field holds a value the spec cannot compute with.

    The message names the spec, the field, the bad value and what would be valid.
    """

    def __init__(self, spec: str, field: str, value: Any, expected: str) -> None:
        self.spec = spec
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"{spec}.{field}={value!r} is invalid: expected {expected}")


class UnknownNameError(InputError, TTTv2Error, LookupError):
    """A name was looked up in a registry that does not hold it."""

    def __init__(self, what: str, name: Any, known: Iterable[str]) -> None:
        self.what = what
        self.name = name
        self.known = sorted(known)
        listing = ", ".join(self.known) if self.known else "(none registered)"
        super().__init__(f"unknown {what} {name!r}; registered: {listing}")

    def __str__(self) -> str:  # LookupError would quote the whole message
        return self.args[0]


class ModeNotSupportedError(TTTv2Error, ValueError):
    """A module was asked to run in a mode its execution strategy does not provide."""


class StrategyError(TTTv2Error):
    """An execution strategy could not specialise a module."""


class KVCacheExhaustedError(TTTv2Error):
    """The KV-cache block pool has too few free blocks for a request.

    ``needed`` and ``free`` let a scheduler decide to queue or preempt instead of failing.
    """

    def __init__(self, needed: int, free: int, seq_id: int | None = None) -> None:
        self.needed = needed
        self.free = free
        self.seq_id = seq_id
        who = f" for sequence {seq_id}" if seq_id is not None else ""
        super().__init__(f"KV cache exhausted{who}: need {needed} blocks, {free} free")
