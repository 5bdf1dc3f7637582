"""Errors of tensor-parallel sharding."""

from __future__ import annotations

from tttv2.core.errors import InputError


class ShardPlanError(InputError, ValueError):
    """A model cannot be split over this many ranks; raised before anything is loaded
    (bad input: a command line reports it in one line)."""

    def __init__(self, where: str, field: str, value: object, valid: str) -> None:
        super().__init__(
            f"tensor parallel: {where}.{field}={value!r} cannot be sharded: expected {valid}"
        )
        self.where, self.field, self.value, self.valid = where, field, value, valid
