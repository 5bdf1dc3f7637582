"""Runtime context: the facts a dynamic strategy chooses from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuntimeContext:
    """What the next forward pass looks like and what it may use.

    ``available_memory`` is in bytes (``None``: unknown). ``seq_len`` is the longest
    sequence in the pass (cached + new tokens); ``num_new_tokens`` the tokens computed.
    """

    batch_size: int = 1
    seq_len: int = 1
    num_new_tokens: int = 1
    available_memory: int | None = None
    latency_critical: bool = False

    def __post_init__(self) -> None:
        for name in ("batch_size", "seq_len", "num_new_tokens"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(
                    f"RuntimeContext.{name}={v!r} is invalid: expected a positive integer"
                )
        mem = self.available_memory
        if mem is not None and (isinstance(mem, bool) or not isinstance(mem, int) or mem < 0):
            raise ValueError(
                f"RuntimeContext.available_memory={self.available_memory!r} is invalid: "
                "expected bytes >= 0 or None"
            )
        if not isinstance(self.latency_critical, bool):
            raise ValueError(
                f"RuntimeContext.latency_critical={self.latency_critical!r} is invalid: expected True or False"
            )
