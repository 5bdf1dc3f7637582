"""Mistral ``config.json`` (transformers' ``MistralConfig``) -> :class:`ModelSpec`.

Llama's layout with GQA and one ``sliding_window`` for every layer (``null``: full attention;
absent: ``MistralConfig``'s default, 4096). A window at least as long as the
context attends to everything, so it maps to no window. ``layer_types`` is ignored, as
transformers' Mistral ignores it (it warns and applies ``sliding_window`` everywhere).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tttv2.blocks.hf_config import HFConfig, read_activation, read_rope, read_sliding_window
from tttv2.core.specs import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    FeedForwardSpec,
    LMHeadSpec,
    ModelSpec,
    NormSpec,
)

DEFAULT_WINDOW = 4096  # MistralConfig's sliding_window when the file has none
OWNER = "MistralConfig"


def model_spec(config: Mapping[str, Any]) -> ModelSpec:
    """The spec of the model a Mistral ``config.json`` describes."""
    cfg = HFConfig(config, OWNER)
    hidden, vocab, heads = (
        cfg.int("hidden_size"),
        cfg.int("vocab_size"),
        cfg.int("num_attention_heads"),
    )
    head_dim, max_pos = cfg.head_dim(), cfg.int("max_position_embeddings", 131072)
    norm = NormSpec(dim=hidden, norm_type="rms", eps=cfg.float("rms_norm_eps", 1e-6, positive=True))
    window = read_sliding_window(cfg) if "sliding_window" in cfg.data else DEFAULT_WINDOW
    attention = AttentionSpec(
        hidden_dim=hidden, num_heads=heads, num_kv_heads=cfg.int("num_key_value_heads", heads),
        head_dim=head_dim, max_seq_len=max_pos, rope=read_rope(cfg, head_dim, max_pos),
        sliding_window=window if window is not None and window < max_pos else None,
    )  # fmt: skip
    ffn = FeedForwardSpec(
        hidden_dim=hidden,
        intermediate_dim=cfg.int("intermediate_size"),
        activation=read_activation(cfg),
    )
    layer = DecoderLayerSpec(attention=attention, ffn=ffn, attn_norm=norm, ffn_norm=norm)
    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=vocab, hidden_dim=hidden),
        layers=(layer,) * cfg.int("num_hidden_layers"),
        final_norm=norm,
        lm_head=LMHeadSpec(
            hidden_dim=hidden, vocab_size=vocab, tied=cfg.bool("tie_word_embeddings", False)
        ),
        max_seq_len=max_pos,
    )
