"""Top-k routing: which experts each token goes to, and with what weight.

``probs = softmax(logits)`` in float32, keep the ``top_k`` largest per token, and with
``renormalize`` divide them by their sum. Weights stay float32 (as Hugging Face Mixtral
does); the MoE block multiplies each expert's output by them and casts back.
"""

from __future__ import annotations

import torch


def route(
    router_logits: torch.Tensor, top_k: int, renormalize: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weights [T, top_k] float32, experts [T, top_k] int64)`` from ``router_logits [T, E]``."""
    probs = torch.softmax(router_logits.float(), dim=-1)
    weights, experts = torch.topk(probs, top_k, dim=-1)
    if renormalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights, experts
