"""Token embedding spec, with optional scale and learned absolute positions."""

from __future__ import annotations

from dataclasses import dataclass

from tttv2.core.specs.base import ModuleSpec


@dataclass(frozen=True)
class EmbeddingSpec(ModuleSpec):
    """``embed(ids) * scale`` (+ ``pos_embed(positions)`` when ``max_positions`` is set,
    as GPT-2). ``scale=None`` means no scaling; Gemma passes ``sqrt(hidden_dim)``."""

    kind = "embedding"

    vocab_size: int
    hidden_dim: int
    scale: float | None = None
    max_positions: int | None = None

    def validate(self) -> None:
        self._positive("vocab_size", "hidden_dim")
        self._positive_float("scale", allow_none=True)
        if self.max_positions is not None:
            self._positive("max_positions")
