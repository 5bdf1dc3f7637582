"""Gemma 3 text ``config.json`` (transformers' ``Gemma3TextConfig``, ``Gemma3ForCausalLM``)
-> :class:`ModelSpec`.

Gemma 2's layer (``1 + w`` RMSNorm sandwich, ``sqrt(hidden)`` embedding scale in the model's
dtype, ``query_pre_attn_scalar``, GeGLU, optional soft-caps, off by default here) plus
per-head ``q_norm`` / ``k_norm`` (``1 + w``, eps ``rms_norm_eps``) and two RoPEs: global
layers use ``rope_parameters.full_attention`` (older files: ``rope_theta``, default 1e6,
and ``rope_scaling``), local layers ``rope_parameters.sliding_attention`` (older files:
``rope_local_base_freq``, default 1e4, never scaled), as ``Gemma3TextConfig`` converts
them. Local layers are those ``layer_types`` names, else every layer but each
``sliding_window_pattern``-th (default 6). ``use_bidirectional_attention`` is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tttv2.blocks.hf_config import (
    FULL,
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

OWNER = "Gemma3TextConfig"
GLOBAL_THETA, LOCAL_THETA = 1_000_000.0, 10_000.0


def rope_by_layer_type(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with ``rope_parameters`` nested per layer type, as ``Gemma3TextConfig``
    builds it from either spelling."""
    params = config.get("rope_parameters") or {}
    full = dict(params.get(FULL) or {"rope_type": "default"})
    local = dict(params.get(SLIDING) or {"rope_type": "default"})
    if config.get("rope_scaling"):
        full.update(config["rope_scaling"])
    full.setdefault("rope_theta", config.get("rope_theta", GLOBAL_THETA))
    local.setdefault("rope_theta", config.get("rope_local_base_freq", LOCAL_THETA))
    rest = {k: v for k, v in config.items() if k not in ("rope_scaling", "rope_parameters")}
    return {**rest, "rope_parameters": {FULL: full, SLIDING: local}}


def declared(cfg: HFConfig, config: Mapping[str, Any], key: str, default: Any) -> Any:
    """``Gemma3TextConfig``'s ``default`` when ``key`` is absent, ``None`` when ``null``."""
    return cfg.float(key, None, positive=True) if key in config else default


def model_spec(config: Mapping[str, Any]) -> ModelSpec:
    """The spec of the model a Gemma 3 text ``config.json`` describes."""
    cfg = HFConfig(rope_by_layer_type(config), OWNER)
    if cfg.bool("use_bidirectional_attention", False):
        raise cfg.error("use_bidirectional_attention", True, "false or null (causal decoding only)")
    hidden, vocab, heads = cfg.int("hidden_size"), cfg.int("vocab_size"), cfg.int("num_attention_heads")
    head_dim, max_pos, n = cfg.int("head_dim", 256), cfg.int("max_position_embeddings", 131072), cfg.int("num_hidden_layers")
    eps = cfg.float("rms_norm_eps", 1e-6, positive=True)
    norm = NormSpec(dim=hidden, eps=eps, unit_offset=True)
    window = cfg.int("sliding_window", None) if "sliding_window" in config else 4096
    bias = cfg.bool("attention_bias", False)
    ffn = FeedForwardSpec(
        hidden_dim=hidden, intermediate_dim=cfg.int("intermediate_size"),
        activation=read_activation(cfg, "hidden_activation", "gelu_pytorch_tanh"),
    )  # fmt: skip
    attention = dict(
        hidden_dim=hidden, num_heads=heads, num_kv_heads=cfg.int("num_key_value_heads", 4), head_dim=head_dim,
        qkv_bias=bias, out_bias=bias, max_seq_len=max_pos, qk_norm=True, qk_norm_eps=eps, qk_norm_unit_offset=True,
        scale=cfg.float("query_pre_attn_scalar", 256, positive=True) ** -0.5,
        logit_softcap=declared(cfg, config, "attn_logit_softcapping", None),
    )  # fmt: skip
    ropes = {kind: read_rope(cfg, head_dim, max_pos, layer_type=kind) for kind in (FULL, SLIDING)}

    def layer(kind: str) -> DecoderLayerSpec:
        local = kind == SLIDING and window is not None
        a = AttentionSpec(**attention, rope=ropes[kind], sliding_window=min(window, max_pos) if local else None)
        return DecoderLayerSpec(
            attention=a, ffn=ffn, attn_norm=norm, post_attn_norm=norm, ffn_norm=norm, post_ffn_norm=norm
        )

    pattern = every_nth_full(n, cfg.int("sliding_window_pattern", 6))
    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=vocab, hidden_dim=hidden, scale=hidden**0.5),
        layers=tuple(layer(k) for k in read_layer_types(cfg, n, pattern)),
        final_norm=norm,
        lm_head=LMHeadSpec(
            hidden_dim=hidden, vocab_size=vocab, tied=cfg.bool("tie_word_embeddings", True),
            final_logit_softcap=declared(cfg, config, "final_logit_softcapping", None),
        ),  # fmt: skip
        max_seq_len=max_pos,
    )
