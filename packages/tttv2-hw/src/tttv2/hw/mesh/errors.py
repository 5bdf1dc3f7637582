"""Errors of the device mesh and its launcher."""

from __future__ import annotations


class MeshConfigError(ValueError):
    """A mesh cannot be built from what it was given (world size, rank, environment)."""

    def __init__(self, field: str, value: object, valid: str) -> None:
        super().__init__(f"device mesh: {field}={value!r} is invalid: expected {valid}")
        self.field, self.value, self.valid = field, value, valid


class WorkerFailedError(RuntimeError):
    """A rank of a launched group raised, died or did not finish in time; the whole group
    was ended. ``rank`` is the first rank seen failing (None: the group timed out)."""

    def __init__(self, rank: int | None, reason: str, details: str = "") -> None:
        where = f"rank {rank}" if rank is not None else "the group"
        super().__init__(
            f"tensor-parallel group failed: {where} {reason}" + (f"\n{details}" if details else "")
        )
        self.rank, self.reason, self.details = rank, reason, details
