"""Hugging Face Phi-3 tensor names -> :class:`tttv2.blocks.TransformerStack` parameter
names. ``qkv_proj`` holds q (``heads * head_dim`` rows), k and v (``kv_heads * head_dim``
rows each) one after the other, and ``gate_up_proj`` gate then up: both are split here."""

from __future__ import annotations

from tttv2.blocks.weights import RenameRules, Split
from tttv2.core.specs import ModelSpec

LAYER = r"model\.layers\.(\d+)\."


def rename_rules(spec: ModelSpec) -> RenameRules:
    """The mapping for a model of ``spec``; a tied model takes its head from the embedding
    and ignores a stored ``lm_head.weight``, as transformers does."""
    a = spec.layers[0].attention
    q, kv = a.num_heads * a.head_dim, a.num_kv_heads * a.head_dim  # type: ignore[operator]
    qkv = Split([rf"layers.\1.attention.{p}_proj.weight" for p in "qkv"], sizes=(q, kv, kv))
    gate_up = Split([r"layers.\1.ffn.gate_proj.weight", r"layers.\1.ffn.up_proj.weight"])
    return RenameRules(
        [
            (r"model\.embed_tokens\.weight", "embedding.weight"),
            (LAYER + r"self_attn\.qkv_proj\.weight", qkv),
            (LAYER + r"self_attn\.o_proj\.weight", r"layers.\1.attention.o_proj.weight"),
            (LAYER + r"mlp\.gate_up_proj\.weight", gate_up),
            (LAYER + r"mlp\.down_proj\.weight", r"layers.\1.ffn.down_proj.weight"),
            (LAYER + r"input_layernorm\.weight", r"layers.\1.attn_norm.weight"),
            (LAYER + r"post_attention_layernorm\.weight", r"layers.\1.ffn_norm.weight"),
            (r"model\.norm\.weight", "final_norm.weight"),
            (r"lm_head\.weight", None if spec.lm_head.tied else "lm_head.weight"),
            (r".*\.rotary_emb\.inv_freq", None),  # recomputed from the config
        ]
    )
