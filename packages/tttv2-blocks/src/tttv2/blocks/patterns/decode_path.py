"""Which way a transformer stack runs its DECODE passes, decided when it is prepared."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DecodePathKind = Literal["compiled", "fused", "eager"]


@dataclass(frozen=True)
class DecodePath:
    """``kind``: ``"compiled"`` (``torch.compile`` of the whole step, for batches up to
    ``max_batch``; larger ones go the fused way when ``fused`` else eagerly), ``"fused"``
    (tttv2-hw's ``decode_layers`` kernel op, one call for all the layers) or ``"eager"``
    (op by op); ``reason`` says why, in words, for reports. A fused or compiled pass that
    the path cannot serve (autograd recording, hooks, too many rows) still runs eagerly;
    ``TransformerStack.fused_decode_reason`` says why the last one did."""

    kind: DecodePathKind
    reason: str
    device: str
    fused: bool = False
    max_batch: int = 1

    def describe(self) -> str:
        """One line: ``fused (cpu): ...``."""
        return f"{self.kind} ({self.device}): {self.reason}"
