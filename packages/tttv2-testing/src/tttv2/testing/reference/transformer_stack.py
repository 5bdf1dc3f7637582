"""Readable reference for a whole decoder-only model (the math of ``ModelSpec``), float64.

One sequence from position 0, every token's logits. Weights by the names of a
``tttv2.blocks`` ``TransformerStack.state_dict()``: ``embedding.*``, ``layers.{i}.*``,
``final_norm.*``, ``lm_head.*`` (``lm_head.weight`` is the embedding's when tied).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from tttv2.core.specs import ModelSpec
from tttv2.testing.reference.decoder_layer import reference_decoder_layer, sub_weights
from tttv2.testing.reference.embedding import reference_embedding, reference_lm_head
from tttv2.testing.reference.normalization import reference_norm


def reference_transformer_stack(
    input_ids: torch.Tensor, weights: Mapping[str, torch.Tensor], spec: ModelSpec
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``(logits [S, vocab], hidden_states)`` for one sequence ``input_ids [S]``.

    ``hidden_states`` follows Hugging Face's convention: the embedding output, the output
    of every layer but the last, and the final-normed output of the last layer."""
    positions = torch.arange(input_ids.shape[0])
    h = reference_embedding(input_ids, sub_weights(weights, "embedding"), spec.embedding, positions)
    hidden = [h]
    for i, layer in enumerate(spec.layers):
        h = reference_decoder_layer(h, sub_weights(weights, f"layers.{i}"), layer, positions)
        hidden.append(h)
    h = reference_norm(h, sub_weights(weights, "final_norm"), spec.final_norm)
    hidden[-1] = h
    head = sub_weights(weights, "lm_head")
    if spec.lm_head.tied:
        head["weight"] = weights["embedding.weight"]
    return reference_lm_head(h, head, spec.lm_head), hidden
