"""Language-model head spec: tied or untied, optional final logit soft-capping."""

from __future__ import annotations

from dataclasses import dataclass

from tttv2.core.specs.base import ModuleSpec


@dataclass(frozen=True)
class LMHeadSpec(ModuleSpec):
    """``logits = x @ W^T (+ b)``; ``tied`` reuses the token embedding matrix as ``W``;
    ``final_logit_softcap`` applies ``cap * tanh(logits / cap)``."""

    kind = "lm_head"

    hidden_dim: int
    vocab_size: int
    tied: bool = False
    bias: bool = False
    final_logit_softcap: float | None = None

    def validate(self) -> None:
        self._positive("hidden_dim", "vocab_size")
        self._bool("tied", "bias")
        self._positive_float("final_logit_softcap", allow_none=True)
        if self.tied and self.bias:
            self._fail("bias", "False when tied=True (an embedding has no bias)")
