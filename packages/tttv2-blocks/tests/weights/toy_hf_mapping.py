"""A generic config -> ModelSpec mapping composed from tttv2.blocks.hf_config's readers
(as a model's config.py is), shared by the loader tests and the fuzz target."""

from __future__ import annotations

from tttv2.blocks.hf_config import HFConfig, read_activation, read_layer_types, read_rope
from tttv2.core.specs import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    FeedForwardSpec,
    LMHeadSpec,
    ModelSpec,
    NormSpec,
)


def spec_of(config) -> ModelSpec:
    """A generic mapping composed from the shared readers (as a model's config.py is)."""
    cfg = HFConfig(config, "ToyConfig")
    hidden, heads, vocab = (
        cfg.int("hidden_size"),
        cfg.int("num_attention_heads"),
        cfg.int("vocab_size"),
    )
    head_dim, max_pos = cfg.head_dim(), cfg.int("max_position_embeddings", 64)
    read_layer_types(cfg, cfg.int("num_hidden_layers"))
    norm = NormSpec(dim=hidden, norm_type="rms")
    attention = AttentionSpec(
        hidden_dim=hidden, num_heads=heads, num_kv_heads=heads, head_dim=head_dim,
        max_seq_len=max_pos, rope=read_rope(cfg, head_dim, max_pos),
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
        lm_head=LMHeadSpec(hidden_dim=hidden, vocab_size=vocab),
        max_seq_len=max_pos,
    )
