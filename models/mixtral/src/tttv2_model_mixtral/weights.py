"""Hugging Face Mixtral tensor names -> :class:`tttv2.blocks.TransformerStack` parameter
names. Attention, norms and embeddings are Llama's. Each expert is stored whole under
``block_sparse_moe.experts.{e}`` as ``w1`` (gate), ``w3`` (up) and ``w2`` (down) and the
router as ``block_sparse_moe.gate``, so every tensor copies 1:1 onto the library's
:class:`~tttv2.blocks.MoE` (``ffn.gate``, ``ffn.experts.{e}.gate_proj/up_proj/down_proj``).

transformers 5 holds the experts as two stacked parameters (``mlp.experts.gate_up_proj``
``[E, 2 * intermediate, hidden]``, gate rows first, and ``mlp.experts.down_proj``
``[E, hidden, intermediate]``) and converts on load and save; a checkpoint saved in that
layout is read too, each stacked tensor cut into its experts' parts."""

from __future__ import annotations

import torch

from tttv2.blocks.weights import RenameRules, Split
from tttv2.core.specs import ModelSpec, MoESpec

LAYER = r"model\.layers\.(\d+)\."
EXPERT = {"w1": "gate_proj", "w3": "up_proj", "w2": "down_proj"}


def rows(tensor: torch.Tensor) -> torch.Tensor:
    """``[E, out, in] -> [E * out, in]`` (a view), so a split along rows gives each expert's matrices."""
    return tensor.reshape(-1, tensor.shape[-1])


def stacked_expert_rules(moe: MoESpec, prefix: str, target: str) -> list[tuple[object, ...]]:
    """Rules for transformers 5's stacked expert tensors under ``prefix`` (a pattern whose
    group 1 is the layer): ``gate_up_proj`` becomes every expert's gate and up, ``down_proj``
    every expert's down."""
    n = moe.num_experts
    gate_up = tuple(f"{target}.{e}.{p}.weight" for e in range(n) for p in ("gate_proj", "up_proj"))
    down = tuple(f"{target}.{e}.down_proj.weight" for e in range(n))
    return [
        (prefix + r"gate_up_proj", Split(gate_up, dim=0), rows),
        (prefix + r"down_proj", Split(down, dim=0), rows),
    ]


def rename_rules(spec: ModelSpec) -> RenameRules:
    """The mapping for a model of ``spec``; a tied model takes its head from the embedding
    and ignores a stored ``lm_head.weight``, as transformers does."""
    moe = spec.layers[0].ffn
    assert isinstance(moe, MoESpec)
    return RenameRules(
        [
            (r"model\.embed_tokens\.weight", "embedding.weight"),
            (LAYER + r"input_layernorm\.weight", r"layers.\1.attn_norm.weight"),
            (LAYER + r"self_attn\.([qkvo])_proj\.weight", r"layers.\1.attention.\2_proj.weight"),
            (LAYER + r"post_attention_layernorm\.weight", r"layers.\1.ffn_norm.weight"),
            (LAYER + r"(?:block_sparse_moe|mlp)\.gate\.weight", r"layers.\1.ffn.gate.weight"),
            *(
                (
                    LAYER + rf"block_sparse_moe\.experts\.(\d+)\.{w}\.weight",
                    rf"layers.\1.ffn.experts.\2.{p}.weight",
                )
                for w, p in EXPERT.items()
            ),
            *stacked_expert_rules(moe, LAYER + r"mlp\.experts\.", r"layers.\1.ffn.experts"),
            (r"model\.norm\.weight", "final_norm.weight"),
            (r"lm_head\.weight", None if spec.lm_head.tied else "lm_head.weight"),
            (r".*\.rotary_emb\.inv_freq", None),  # recomputed from the config
        ]
    )
