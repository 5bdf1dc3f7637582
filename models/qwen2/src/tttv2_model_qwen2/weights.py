"""Hugging Face Qwen2 tensor names -> :class:`tttv2.blocks.TransformerStack` parameter
names. Qwen2 stores q/k/v (with biases), o and gate/up/down separately, so every tensor
copies 1:1."""

from __future__ import annotations

from tttv2.blocks.weights import RenameRules
from tttv2.core.specs import ModelSpec

LAYER = r"model\.layers\.(\d+)\."


def rename_rules(spec: ModelSpec) -> RenameRules:
    """The mapping for a model of ``spec``; a tied model (the small Qwen2.5 sizes) takes
    its head from the embedding and ignores a stored ``lm_head.weight``, as transformers
    does."""
    return RenameRules(
        [
            (r"model\.embed_tokens\.weight", "embedding.weight"),
            (LAYER + r"input_layernorm\.weight", r"layers.\1.attn_norm.weight"),
            (LAYER + r"self_attn\.([qkv])_proj\.(weight|bias)", r"layers.\1.attention.\2_proj.\3"),
            (LAYER + r"self_attn\.o_proj\.weight", r"layers.\1.attention.o_proj.weight"),
            (LAYER + r"post_attention_layernorm\.weight", r"layers.\1.ffn_norm.weight"),
            (LAYER + r"mlp\.(gate|up|down)_proj\.weight", r"layers.\1.ffn.\2_proj.weight"),
            (r"model\.norm\.weight", "final_norm.weight"),
            (r"lm_head\.weight", None if spec.lm_head.tied else "lm_head.weight"),
            (r".*\.rotary_emb\.inv_freq", None),  # recomputed from the config
        ]
    )
