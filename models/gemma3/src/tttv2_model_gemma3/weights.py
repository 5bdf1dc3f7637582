"""Hugging Face Gemma 3 tensor names -> :class:`tttv2.blocks.TransformerStack` parameter
names, all 1:1: q/k/v/o (biases only with ``attention_bias``), the per-head ``q_norm`` /
``k_norm``, gate/up/down, and the sandwich norms (``input_layernorm`` /
``post_attention_layernorm`` around attention, ``pre_feedforward_layernorm`` /
``post_feedforward_layernorm`` around the MLP)."""

from __future__ import annotations

from tttv2.blocks.weights import RenameRules
from tttv2.core.specs import ModelSpec

LAYER = r"model\.layers\.(\d+)\."


def rename_rules(spec: ModelSpec) -> RenameRules:
    """The mapping for a model of ``spec``; a tied model takes its head from the embedding
    and ignores a stored ``lm_head.weight``, as transformers does."""
    return RenameRules(
        [
            (r"model\.embed_tokens\.weight", "embedding.weight"),
            (LAYER + r"self_attn\.([qkvo])_proj\.(weight|bias)", r"layers.\1.attention.\2_proj.\3"),
            (LAYER + r"self_attn\.([qk])_norm\.weight", r"layers.\1.attention.\2_norm.weight"),
            (LAYER + r"mlp\.(gate|up|down)_proj\.weight", r"layers.\1.ffn.\2_proj.weight"),
            (LAYER + r"input_layernorm\.weight", r"layers.\1.attn_norm.weight"),
            (LAYER + r"post_attention_layernorm\.weight", r"layers.\1.post_attn_norm.weight"),
            (LAYER + r"pre_feedforward_layernorm\.weight", r"layers.\1.ffn_norm.weight"),
            (LAYER + r"post_feedforward_layernorm\.weight", r"layers.\1.post_ffn_norm.weight"),
            (r"model\.norm\.weight", "final_norm.weight"),
            (r"lm_head\.weight", None if spec.lm_head.tied else "lm_head.weight"),
            (r".*\.rotary_emb\.\w*inv_freq", None),  # recomputed from the config
        ]
    )
