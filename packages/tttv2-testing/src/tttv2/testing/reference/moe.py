"""Readable reference for mixture-of-experts (the math of ``MoESpec``), float64.

Token by token: softmax over the router logits, the ``top_k`` most probable experts
(renormalised when ``spec.renormalize``), the weighted sum of their outputs, plus the
(optionally sigmoid-gated) shared expert. Weights by Hugging Face names: ``gate.weight``
``[E, hidden]``, ``experts.{i}.{gate,up,down}_proj.weight``, ``shared_expert.*``,
``shared_expert_gate.weight`` ``[1, hidden]``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from tttv2.core.specs import MoESpec
from tttv2.testing.reference.feed_forward import reference_feed_forward


def _sub(weights: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}


def reference_routing(
    x: torch.Tensor, weights: Mapping[str, torch.Tensor], spec: MoESpec
) -> tuple[list[list[int]], list[list[float]], torch.Tensor]:
    """Per token: chosen expert ids (most probable first), their weights, and the full
    probability matrix ``[T, E]`` (float64)."""
    x = x.detach().to(torch.float64)
    logits = x @ weights["gate.weight"].detach().to(torch.float64).T
    probs = torch.softmax(logits, dim=-1)
    chosen, chosen_weights = [], []
    for t in range(x.shape[0]):
        ranked = sorted(range(spec.num_experts), key=lambda e: -float(probs[t, e]))[: spec.top_k]
        w = [float(probs[t, e]) for e in ranked]
        if spec.renormalize:
            total = sum(w)
            w = [v / total for v in w]
        chosen.append(ranked)
        chosen_weights.append(w)
    return chosen, chosen_weights, probs


def reference_moe(
    x: torch.Tensor, weights: Mapping[str, torch.Tensor], spec: MoESpec
) -> torch.Tensor:
    """``[T, hidden]`` -> ``[T, hidden]`` in float64."""
    x = x.detach().to(torch.float64)
    chosen, chosen_weights, _ = reference_routing(x, weights, spec)
    rows = []
    for t in range(x.shape[0]):
        token = x[t : t + 1]
        y = torch.zeros_like(token)
        for e, w in zip(chosen[t], chosen_weights[t], strict=True):
            y = y + w * reference_feed_forward(token, _sub(weights, f"experts.{e}."), spec.expert)
        if spec.shared_expert is not None:
            shared = reference_feed_forward(
                token, _sub(weights, "shared_expert."), spec.shared_expert
            )
            if spec.shared_expert_gate:
                gate_logit = (
                    token @ weights["shared_expert_gate.weight"].detach().to(torch.float64).T
                )
                shared = torch.sigmoid(gate_logit) * shared
            y = y + shared
        rows.append(y)
    return torch.cat(rows, dim=0)
