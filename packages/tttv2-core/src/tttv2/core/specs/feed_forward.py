"""Feed-forward spec: gated (SwiGLU, GeGLU) and plain MLPs."""

from __future__ import annotations

from dataclasses import dataclass

from tttv2.core.specs.base import ModuleSpec

ACTIVATIONS = ("silu", "gelu", "gelu_tanh", "relu")


@dataclass(frozen=True)
class FeedForwardSpec(ModuleSpec):
    """``gated``: ``down(act(gate(x)) * up(x))``; otherwise ``down(act(up(x)))``."""

    kind = "feed_forward"

    hidden_dim: int
    intermediate_dim: int
    activation: str = "silu"
    gated: bool = True
    bias: bool = False

    def validate(self) -> None:
        self._positive("hidden_dim", "intermediate_dim")
        self._one_of("activation", ACTIVATIONS)
        self._bool("gated", "bias")
