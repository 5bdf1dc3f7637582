"""Readable reference for token embeddings and the LM head (``EmbeddingSpec``,
``LMHeadSpec``), float64.

Embedding weights: ``weight [vocab, hidden]``, ``position_embedding [max_positions,
hidden]``. Head weights: ``weight [vocab, hidden]`` (the embedding's when tied), ``bias``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from tttv2.core.specs import EmbeddingSpec, LMHeadSpec


def reference_embedding(
    input_ids: torch.Tensor,
    weights: Mapping[str, torch.Tensor],
    spec: EmbeddingSpec,
    positions: torch.Tensor | None = None,
) -> torch.Tensor:
    table = weights["weight"].detach().to(torch.float64)
    rows = [table[int(i)] for i in input_ids]
    h = torch.stack(rows)
    if spec.scale is not None:
        h = h * spec.scale
    if spec.max_positions is not None:
        assert positions is not None, "a spec with max_positions needs positions"
        pos_table = weights["position_embedding"].detach().to(torch.float64)
        h = h + torch.stack([pos_table[int(p)] for p in positions])
    return h


def reference_lm_head(
    x: torch.Tensor, weights: Mapping[str, torch.Tensor], spec: LMHeadSpec
) -> torch.Tensor:
    logits = x.detach().to(torch.float64) @ weights["weight"].detach().to(torch.float64).T
    if spec.bias:
        logits = logits + weights["bias"].detach().to(torch.float64)
    if spec.final_logit_softcap is not None:
        cap = spec.final_logit_softcap
        logits = cap * torch.tanh(logits / cap)
    return logits
