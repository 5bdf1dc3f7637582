"""Gemma 2 ``config.json`` (transformers' ``Gemma2Config``) -> :class:`ModelSpec`.

RMSNorm scaled by ``1 + w`` (fp32) before and after attention and the MLP (sandwich norms),
embeddings scaled by ``sqrt(hidden_size)`` rounded to the model's dtype, attention scores
scaled by ``query_pre_attn_scalar ** -0.5`` and soft-capped at ``attn_logit_softcapping``,
logits soft-capped at ``final_logit_softcapping``, sliding-window (local) and global layers
alternating as ``layer_types`` says (default: even layers local, as ``Gemma2Config``), GeGLU
with ``hidden_activation`` (tanh GELU). Config defaults are ``Gemma2Config``'s (``head_dim``
256, ``sliding_window`` 4096, tied head). A window as long as the context is no window.
``use_bidirectional_attention`` (embedding models) is refused: the blocks are causal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tttv2.blocks.hf_config import (
    SLIDING,
    HFConfig,
    every_nth_full,
    read_activation,
    read_layer_types,
    read_rope,
)
from tttv2.core.specs import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    FeedForwardSpec,
    LMHeadSpec,
    ModelSpec,
    NormSpec,
)

OWNER = "Gemma2Config"


def declared(cfg: HFConfig, config: Mapping[str, Any], key: str, default: float) -> Any:
    """``Gemma2Config``'s ``default`` when ``key`` is absent; ``None`` when it is ``null``
    (the feature off), else the positive number."""
    return cfg.float(key, None, positive=True) if key in config else default


def model_spec(config: Mapping[str, Any]) -> ModelSpec:
    """The spec of the model a Gemma 2 ``config.json`` describes."""
    cfg = HFConfig(config, OWNER)
    if cfg.bool("use_bidirectional_attention", False):
        raise cfg.error("use_bidirectional_attention", True, "false or null (causal decoding only)")
    hidden, vocab, heads = (
        cfg.int("hidden_size"),
        cfg.int("vocab_size"),
        cfg.int("num_attention_heads"),
    )
    head_dim, max_pos, layers = (
        cfg.int("head_dim", 256),
        cfg.int("max_position_embeddings", 8192),
        cfg.int("num_hidden_layers"),
    )
    norm = NormSpec(
        dim=hidden, eps=cfg.float("rms_norm_eps", 1e-6, positive=True), unit_offset=True
    )
    window = cfg.int("sliding_window", None) if "sliding_window" in config else 4096
    bias = cfg.bool("attention_bias", False)
    ffn = FeedForwardSpec(
        hidden_dim=hidden, intermediate_dim=cfg.int("intermediate_size"),
        activation=read_activation(cfg, "hidden_activation", "gelu_pytorch_tanh"),
    )  # fmt: skip
    attention = dict(
        hidden_dim=hidden, num_heads=heads, num_kv_heads=cfg.int("num_key_value_heads", 4), head_dim=head_dim,
        qkv_bias=bias, out_bias=bias, max_seq_len=max_pos, rope=read_rope(cfg, head_dim, max_pos),
        scale=cfg.float("query_pre_attn_scalar", 256, positive=True) ** -0.5,
        logit_softcap=declared(cfg, config, "attn_logit_softcapping", 50.0),
    )  # fmt: skip

    def layer(kind: str) -> DecoderLayerSpec:
        local = kind == SLIDING and window is not None
        a = AttentionSpec(**attention, sliding_window=min(window, max_pos) if local else None)
        return DecoderLayerSpec(
            attention=a,
            ffn=ffn,
            attn_norm=norm,
            post_attn_norm=norm,
            ffn_norm=norm,
            post_ffn_norm=norm,
        )

    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=vocab, hidden_dim=hidden, scale=hidden**0.5),
        layers=tuple(layer(k) for k in read_layer_types(cfg, layers, every_nth_full(layers, 2))),
        final_norm=norm,
        lm_head=LMHeadSpec(
            hidden_dim=hidden,
            vocab_size=vocab,
            tied=cfg.bool("tie_word_embeddings", True),
            final_logit_softcap=declared(cfg, config, "final_logit_softcapping", 30.0),
        ),  # fmt: skip
        max_seq_len=max_pos,
    )
