"""Gemma 3 text ``config.json`` (transformers' ``Gemma3TextConfig``, ``model_type``
``gemma3_text``) -> :class:`ModelSpec`.

Gemma 2's layout - ``(1 + w)`` RMSNorm in fp32 before and after attention and the MLP,
embeddings scaled by ``sqrt(hidden_size)``, scores scaled by ``query_pre_attn_scalar ** -0.5``,
GeGLU with ``hidden_activation``, tied head - plus a per-head ``(1 + w)`` RMSNorm on q and k
before RoPE, and one RoPE per layer kind (:mod:`tttv2_model_gemma3.rope`). Layers are local
(``sliding_window``) or global as ``layer_types`` says, else every ``sliding_window_pattern``-th
layer (default 6) is global. Logits are soft-capped at ``final_logit_softcapping`` when set.
``attn_logit_softcapping`` is ignored, as transformers' Gemma 3 attention ignores it (it never
passes it to the attention function). Absent keys take ``Gemma3TextConfig``'s defaults.
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
from tttv2_model_gemma3.rope import ropes_by_layer_type

OWNER = "Gemma3TextConfig"

#: Declared by Gemma3TextConfig; no effect on inference output (``attn_logit_softcapping``:
#: stored by transformers' Gemma 3 attention but never applied).
IGNORED: tuple[str, ...] = (
    "initializer_range", "use_cache", "pad_token_id", "attention_dropout", "attn_logit_softcapping",
)  # fmt: skip


def layer_types(cfg: HFConfig, num_layers: int) -> tuple[str, ...]:
    """``layer_types`` from the file, else layer ``i`` global when ``(i + 1) %
    sliding_window_pattern == 0`` (default 6), as ``Gemma3TextConfig.__post_init__``."""
    if cfg.has("layer_types"):
        return read_layer_types(cfg, num_layers)
    return every_nth_full(num_layers, cfg.int("sliding_window_pattern", 6))


def model_spec(config: Mapping[str, Any]) -> ModelSpec:
    """The spec of the model a Gemma 3 text ``config.json`` describes."""
    cfg = HFConfig(config, OWNER)
    if cfg.bool("use_bidirectional_attention", False):
        raise cfg.error("use_bidirectional_attention", True, "false or null (causal decoding only)")
    hidden, vocab = cfg.int("hidden_size", 2304), cfg.int("vocab_size", 262_208)
    heads, head_dim = cfg.int("num_attention_heads", 8), cfg.int("head_dim", 256)
    max_pos, num_layers = (
        cfg.int("max_position_embeddings", 131_072),
        cfg.int("num_hidden_layers", 26),
    )
    eps = cfg.float("rms_norm_eps", 1e-6, positive=True)
    norm = NormSpec(dim=hidden, eps=eps, unit_offset=True)
    if (
        "sliding_window" in config and config["sliding_window"] is None
    ):  # transformers fails building masks
        raise cfg.error("sliding_window", None, "a window in tokens (absent: 4096)")
    window = cfg.int("sliding_window", 4096)
    bias = cfg.bool("attention_bias", False)
    ropes = ropes_by_layer_type(cfg, head_dim, max_pos)
    ffn = FeedForwardSpec(
        hidden_dim=hidden, intermediate_dim=cfg.int("intermediate_size", 9216),
        activation=read_activation(cfg, "hidden_activation", "gelu_pytorch_tanh"),
    )  # fmt: skip
    attention = dict(
        hidden_dim=hidden, num_heads=heads, num_kv_heads=cfg.int("num_key_value_heads", 4), head_dim=head_dim,
        qkv_bias=bias, out_bias=bias, qk_norm=True, qk_norm_eps=eps, qk_norm_unit_offset=True, max_seq_len=max_pos,
        scale=cfg.float("query_pre_attn_scalar", 256, positive=True) ** -0.5,
    )  # fmt: skip

    def layer(kind: str) -> DecoderLayerSpec:
        local = kind == SLIDING and window < max_pos  # a window as long as the context is none
        a = AttentionSpec(**attention, rope=ropes[kind], sliding_window=window if local else None)
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
        layers=tuple(layer(kind) for kind in layer_types(cfg, num_layers)),
        final_norm=norm,
        lm_head=LMHeadSpec(
            hidden_dim=hidden,
            vocab_size=vocab,
            tied=cfg.bool("tie_word_embeddings", True),
            final_logit_softcap=cfg.float("final_logit_softcapping", None, positive=True),
        ),  # fmt: skip
        max_seq_len=max_pos,
    )
