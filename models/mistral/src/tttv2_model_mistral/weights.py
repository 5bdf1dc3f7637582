"""Hugging Face MistralForCausalLM tensor names -> :class:`tttv2.blocks.TransformerStack`
parameter names. Written by tools/new_model.py from the names transformers'
MistralForCausalLM has on the meta device; a ``TODO.`` target is a name the scaffold could not
map (loading reports it as unexpected until it is mapped, or set to ``None`` to skip it
on purpose)."""

from __future__ import annotations

from tttv2.blocks.weights import RenameRules
from tttv2.core.specs import ModelSpec


def rename_rules(spec: ModelSpec) -> RenameRules:
    """The mapping for a model of ``spec``; a tied model takes its head from the embedding
    and ignores a stored ``lm_head.weight``, as transformers does."""
    return RenameRules(
        [
            (r"model\.embed_tokens\.weight", r"embedding.weight"),
            (r"model\.layers\.(\d+)\.self_attn\.q_proj\.(weight|bias)", r"layers.\1.attention.q_proj.\2"),
            (r"model\.layers\.(\d+)\.self_attn\.k_proj\.(weight|bias)", r"layers.\1.attention.k_proj.\2"),
            (r"model\.layers\.(\d+)\.self_attn\.v_proj\.(weight|bias)", r"layers.\1.attention.v_proj.\2"),
            (r"model\.layers\.(\d+)\.self_attn\.o_proj\.(weight|bias)", r"layers.\1.attention.o_proj.\2"),
            (r"model\.layers\.(\d+)\.mlp\.gate_proj\.(weight|bias)", r"layers.\1.ffn.gate_proj.\2"),
            (r"model\.layers\.(\d+)\.mlp\.up_proj\.(weight|bias)", r"layers.\1.ffn.up_proj.\2"),
            (r"model\.layers\.(\d+)\.mlp\.down_proj\.(weight|bias)", r"layers.\1.ffn.down_proj.\2"),
            (r"model\.layers\.(\d+)\.input_layernorm\.(weight|bias)", r"layers.\1.attn_norm.\2"),
            (r"model\.layers\.(\d+)\.post_attention_layernorm\.(weight|bias)", r"layers.\1.ffn_norm.\2"),
            (r"model\.norm\.weight", r"final_norm.weight"),
            (r"lm_head\.weight", None if spec.lm_head.tied else "lm_head.weight"),
            (r".*\.rotary_emb\.inv_freq", None),  # recomputed from the config
        ]
    )
