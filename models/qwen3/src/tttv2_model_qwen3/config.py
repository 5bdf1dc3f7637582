"""Qwen3 ``config.json`` (transformers' ``Qwen3Config``) -> :class:`ModelSpec`.

A per-head RMSNorm on q and k before RoPE (``q_norm``/``k_norm``, eps ``rms_norm_eps``);
``head_dim`` is its own field (default 128, not ``hidden_size / num_attention_heads``);
``attention_bias`` puts biases on q, k, v and o together. Which layers attend to a window
follows ``Qwen3Config``: the window is ``sliding_window`` only when ``use_sliding_window``
is true (else no layer has one); ``layer_types`` from the file decides per layer, and without it layers from
``max_window_layers`` on are windowed. A layer typed ``sliding_attention`` with no window
is refused, as transformers refuses it when building the mask. A window at least as long
as the context attends to everything, so it maps to no window.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tttv2.blocks.hf_config import (
    FULL,
    SLIDING,
    HFConfig,
    read_activation,
    read_layer_types,
    read_rope,
    read_sliding_window,
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

DEFAULT_WINDOW = 4096  # Qwen2Config / Qwen3Config's sliding_window when the file has none
OWNER = "Qwen3Config"


def layer_windows(cfg: HFConfig, num_layers: int, max_pos: int) -> tuple[int | None, ...]:
    """Each layer's sliding window (``None``: full attention), as ``Qwen3Config`` sets them."""
    window = None
    if cfg.bool("use_sliding_window", False):  # absent sliding_window: the class default, 4096
        window = read_sliding_window(cfg) if "sliding_window" in cfg.data else DEFAULT_WINDOW
    first = cfg.int("max_window_layers", 28, minimum=0)
    derived = [SLIDING if window is not None and i >= first else FULL for i in range(num_layers)]
    types = read_layer_types(cfg, num_layers, derived)
    if SLIDING in types and window is None:
        raise cfg.error(
            "layer_types",
            "sliding_attention",
            "full_attention only while use_sliding_window is false",
        )
    return tuple(window if t == SLIDING and window < max_pos else None for t in types)  # type: ignore[operator]


def model_spec(config: Mapping[str, Any]) -> ModelSpec:
    """The spec of the model a Qwen3 ``config.json`` describes."""
    cfg = HFConfig(config, OWNER)
    hidden, vocab, heads = (
        cfg.int("hidden_size"),
        cfg.int("vocab_size"),
        cfg.int("num_attention_heads"),
    )
    head_dim, max_pos = cfg.int("head_dim", 128), cfg.int("max_position_embeddings", 32768)
    norm = NormSpec(dim=hidden, norm_type="rms", eps=cfg.float("rms_norm_eps", 1e-6, positive=True))
    rope = read_rope(cfg, head_dim, max_pos)
    kv_heads, bias = cfg.int("num_key_value_heads", heads), cfg.bool("attention_bias", False)
    ffn = FeedForwardSpec(
        hidden_dim=hidden,
        intermediate_dim=cfg.int("intermediate_size"),
        activation=read_activation(cfg),
    )

    def layer(window: int | None) -> DecoderLayerSpec:
        attention = AttentionSpec(
            hidden_dim=hidden, num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim, qkv_bias=bias,
            out_bias=bias, qk_norm=True, qk_norm_eps=norm.eps, max_seq_len=max_pos, rope=rope,
            sliding_window=window,
        )  # fmt: skip
        return DecoderLayerSpec(attention=attention, ffn=ffn, attn_norm=norm, ffn_norm=norm)

    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=vocab, hidden_dim=hidden),
        layers=tuple(layer(w) for w in layer_windows(cfg, cfg.int("num_hidden_layers"), max_pos)),
        final_norm=norm,
        lm_head=LMHeadSpec(
            hidden_dim=hidden, vocab_size=vocab, tied=cfg.bool("tie_word_embeddings", False)
        ),
        max_seq_len=max_pos,
    )
