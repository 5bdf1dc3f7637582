"""Top-k routing: which experts each token goes to, and with what weight.

``probs = softmax(logits)`` in float32, keep the ``top_k`` largest per token, and with
``renormalize`` divide them by their sum. Weights stay float32 (as Hugging Face Mixtral
does); with ``round_weights`` they are first rounded to the logits' dtype (as Hugging Face
Qwen2-MoE / Qwen3-MoE do: ``router_top_value.to(router_logits.dtype)``) and handed back as
the float32 values of those rounded numbers, so an expert output times its weight rounds
once, as the reduced-precision product does. The MoE block multiplies each expert's output
by them and casts back.
"""

from __future__ import annotations

import torch


def route(
    router_logits: torch.Tensor, top_k: int, renormalize: bool, round_weights: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weights [T, top_k] float32, experts [T, top_k] int64)`` from ``router_logits [T, E]``;
    ``round_weights`` rounds the weights to ``router_logits.dtype`` first."""
    probs = torch.softmax(router_logits.float(), dim=-1)
    weights, experts = torch.topk(probs, top_k, dim=-1)
    if renormalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    if round_weights:
        weights = weights.to(router_logits.dtype).float()
    return weights, experts
