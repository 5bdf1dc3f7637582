"""Mixture-of-experts spec: top-k routed gated experts, optional shared expert."""

from __future__ import annotations

from dataclasses import dataclass

from tttv2.core.specs.base import ModuleSpec
from tttv2.core.specs.feed_forward import FeedForwardSpec


@dataclass(frozen=True)
class MoESpec(ModuleSpec):
    """Router: ``softmax(x @ W_r)`` then top-k (renormalised over the k when
    ``renormalize``). Each expert is ``expert`` (a FeedForwardSpec). ``shared_expert`` runs
    on every token; with ``shared_expert_gate`` its output is scaled by
    ``sigmoid(x @ w_g)``.

    The router softmax and renormalisation run in float32. ``round_routing_weights``: the
    top-k weights are then rounded to the activation dtype (the router logits' dtype) before
    they scale the experts' outputs, as Hugging Face Qwen2-MoE / Qwen3-MoE do; False (the
    default, as Hugging Face Mixtral does) keeps them float32. Only a reduced-precision
    activation dtype (bf16, fp16) tells the two apart."""

    kind = "moe"

    hidden_dim: int
    num_experts: int
    top_k: int
    expert: FeedForwardSpec
    renormalize: bool = True
    shared_expert: FeedForwardSpec | None = None
    shared_expert_gate: bool = False
    round_routing_weights: bool = False

    def validate(self) -> None:
        self._positive("hidden_dim", "num_experts", "top_k")
        if self.top_k > self.num_experts:
            self._fail("top_k", f"<= num_experts ({self.num_experts})")
        self._bool("renormalize", "shared_expert_gate", "round_routing_weights")
        for f in ("expert", "shared_expert"):
            v = getattr(self, f)
            if v is None and f == "shared_expert":
                continue
            if not isinstance(v, FeedForwardSpec) or v.hidden_dim != self.hidden_dim:
                self._fail(f, f"a FeedForwardSpec with hidden_dim == {self.hidden_dim}")
        if self.shared_expert_gate and self.shared_expert is None:
            self._fail("shared_expert_gate", "False when there is no shared_expert")
