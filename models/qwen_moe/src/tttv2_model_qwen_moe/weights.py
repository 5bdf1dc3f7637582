"""Hugging Face Qwen2-MoE / Qwen3-MoE tensor names -> :class:`tttv2.blocks.TransformerStack`
parameter names. Every tensor copies 1:1: q/k/v/o (with their biases when present), Qwen3's
``q_norm``/``k_norm``, a dense layer's ``mlp.gate_proj/up_proj/down_proj``, and a sparse
layer's router ``mlp.gate``, experts ``mlp.experts.{e}.gate_proj/up_proj/down_proj``,
Qwen2's ``mlp.shared_expert.*`` and ``mlp.shared_expert_gate`` onto the library's
:class:`~tttv2.blocks.MoE` (same names under ``ffn``).

transformers 5 holds a sparse layer's experts as two stacked parameters
(``mlp.experts.gate_up_proj`` ``[E, 2 * moe_intermediate, hidden]``, gate rows first, and
``mlp.experts.down_proj`` ``[E, hidden, moe_intermediate]``) and converts on load and save;
a checkpoint saved in that layout is read too, each stacked tensor cut into its experts'
parts."""

from __future__ import annotations

import torch

from tttv2.blocks.weights import RenameRules, Split
from tttv2.core.specs import ModelSpec, MoESpec

LAYER = r"model\.layers\.(\d+)\."


def rows(tensor: torch.Tensor) -> torch.Tensor:
    """``[E, out, in] -> [E * out, in]`` (a view), so a split along rows gives each expert's matrices."""
    return tensor.reshape(-1, tensor.shape[-1])


def stacked_expert_rules(moe: MoESpec) -> list[tuple[object, ...]]:
    """transformers 5's stacked expert tensors: ``gate_up_proj`` becomes every expert's gate
    and up, ``down_proj`` every expert's down."""
    n, target = moe.num_experts, r"layers.\1.ffn.experts"
    gate_up = tuple(f"{target}.{e}.{p}.weight" for e in range(n) for p in ("gate_proj", "up_proj"))
    down = tuple(f"{target}.{e}.down_proj.weight" for e in range(n))
    return [
        (LAYER + r"mlp\.experts\.gate_up_proj", Split(gate_up, dim=0), rows),
        (LAYER + r"mlp\.experts\.down_proj", Split(down, dim=0), rows),
    ]


def rename_rules(spec: ModelSpec) -> RenameRules:
    """The mapping for a model of ``spec``; a tied model takes its head from the embedding
    and ignores a stored ``lm_head.weight``, as transformers does."""
    moe = next((layer.ffn for layer in spec.layers if isinstance(layer.ffn, MoESpec)), None)
    return RenameRules(
        [
            (r"model\.embed_tokens\.weight", "embedding.weight"),
            (LAYER + r"input_layernorm\.weight", r"layers.\1.attn_norm.weight"),
            (LAYER + r"self_attn\.([qkvo])_proj\.(weight|bias)", r"layers.\1.attention.\2_proj.\3"),
            (LAYER + r"self_attn\.([qk])_norm\.weight", r"layers.\1.attention.\2_norm.weight"),
            (LAYER + r"post_attention_layernorm\.weight", r"layers.\1.ffn_norm.weight"),
            (LAYER + r"mlp\.(gate|up|down)_proj\.weight", r"layers.\1.ffn.\2_proj.weight"),
            (LAYER + r"mlp\.gate\.weight", r"layers.\1.ffn.gate.weight"),
            (
                LAYER + r"mlp\.experts\.(\d+)\.(gate|up|down)_proj\.weight",
                r"layers.\1.ffn.experts.\2.\3_proj.weight",
            ),
            (
                LAYER + r"mlp\.shared_expert\.(gate|up|down)_proj\.weight",
                r"layers.\1.ffn.shared_expert.\2_proj.weight",
            ),
            (
                LAYER + r"mlp\.shared_expert_gate\.weight",
                r"layers.\1.ffn.shared_expert_gate.weight",
            ),
            *(stacked_expert_rules(moe) if moe is not None else []),
            (r"model\.norm\.weight", "final_norm.weight"),
            (r"lm_head\.weight", None if spec.lm_head.tied else "lm_head.weight"),
            (r".*\.rotary_emb\.inv_freq", None),  # recomputed from the config
        ]
    )
