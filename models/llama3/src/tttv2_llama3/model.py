"""The Llama model: the library's TransformerStack built from a Llama config.

Everything a Llama layer computes is a tttv2 block (embedding, RMSNorm, grouped-query
attention with rotary embeddings, SwiGLU feed-forward, LM head); this module only says
which blocks, from ``config.json`` (see :mod:`tttv2_llama3.config`).
"""

from __future__ import annotations

from typing import Any

import torch

from tttv2.blocks import TransformerStack
from tttv2.core import ExecutionStrategy
from tttv2_llama3.config import model_spec


class LlamaForCausalLM(TransformerStack):
    """``forward(input_ids [T], meta, cache) -> logits``; ``new_cache(num_blocks, block_size)``.

    Parameters (before :func:`~tttv2.blocks.weights.fuse_projections`): ``embedding``,
    ``layers.{i}.attn_norm / attention.{q,k,v,o}_proj / ffn_norm / ffn.{gate,up,down}_proj``,
    ``final_norm``, ``lm_head`` (the embedding itself when tied)."""

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        device: torch.device | str | None = None,
        execution_strategy: ExecutionStrategy | str | None = None,
    ) -> LlamaForCausalLM:
        return cls(model_spec(config), device, execution_strategy)
