"""Hugging Face GPT-2 tensor names -> :class:`tttv2.blocks.TransformerStack` parameter
names. ``Conv1D`` stores weights ``[in, out]`` (transposed here); ``c_attn`` holds q, k and
v one after the other (split here)."""

from __future__ import annotations

from tttv2.blocks.weights import RenameRules, Split, transpose
from tttv2.core.specs import ModelSpec

LAYER = r"(?:transformer\.)?h\.(\d+)\."


def rename_rules(spec: ModelSpec) -> RenameRules:
    """The mapping for a model of ``spec``; a tied model takes its head from the embedding
    and ignores a stored ``lm_head.weight``, as transformers does. Old checkpoints' causal
    mask buffers (``attn.bias``, ``attn.masked_bias``) and cross-attention layers (used only
    with encoder states) are skipped."""
    qkv = Split([rf"layers.\1.attention.{p}_proj.\2" for p in "qkv"])
    return RenameRules(
        [
            (r"(?:transformer\.)?wte\.weight", "embedding.weight"),
            (r"(?:transformer\.)?wpe\.weight", "embedding.position_embedding"),
            (LAYER + r"ln_1\.(weight|bias)", r"layers.\1.attn_norm.\2"),
            (LAYER + r"ln_2\.(weight|bias)", r"layers.\1.ffn_norm.\2"),
            (LAYER + r"attn\.c_attn\.(weight)", qkv, transpose),
            (LAYER + r"attn\.c_attn\.(bias)", qkv),
            (LAYER + r"attn\.c_proj\.weight", r"layers.\1.attention.o_proj.weight", transpose),
            (LAYER + r"attn\.c_proj\.bias", r"layers.\1.attention.o_proj.bias"),
            (LAYER + r"mlp\.c_fc\.weight", r"layers.\1.ffn.up_proj.weight", transpose),
            (LAYER + r"mlp\.c_fc\.bias", r"layers.\1.ffn.up_proj.bias"),
            (LAYER + r"mlp\.c_proj\.weight", r"layers.\1.ffn.down_proj.weight", transpose),
            (LAYER + r"mlp\.c_proj\.bias", r"layers.\1.ffn.down_proj.bias"),
            (LAYER + r"attn\.(?:masked_)?bias", None),
            (LAYER + r"(?:crossattention|ln_cross_attn)\..*", None),
            (r"(?:transformer\.)?ln_f\.(weight|bias)", r"final_norm.\1"),
            (r"lm_head\.weight", None if spec.lm_head.tied else "lm_head.weight"),
        ]
    )
