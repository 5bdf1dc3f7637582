"""Qwen2-MoE and Qwen3-MoE ``config.json`` (transformers' ``Qwen2MoeConfig`` /
``Qwen3MoeConfig``) -> :class:`ModelSpec`.

Both: layer ``i`` is sparse (a :class:`MoESpec`) when ``i`` is not in ``mlp_only_layers``,
``num_experts > 0`` and ``(i + 1) % decoder_sparse_step == 0``, else a dense SwiGLU of
``intermediate_size``. A sparse layer routes each token to ``num_experts_per_tok`` of
``num_experts`` SwiGLU experts of ``moe_intermediate_size``: softmax in float32 over the
router logits, top-k, renormalised to sum to one only with ``norm_topk_prob``.

Qwen2-MoE: every sparse layer also runs a shared expert (``shared_expert_intermediate_size``)
scaled by ``sigmoid(shared_expert_gate(x))``; biases on q/k/v (``qkv_bias``, default true),
none on o. Windows as ``Qwen2MoeConfig`` sets them: the window is ``sliding_window`` only
when ``use_sliding_window`` is true; ``layer_types`` from the file decides per layer, and
without it layers ``i < max_window_layers`` with even ``i`` are windowed (transformers'
derivation, not Qwen2's). A layer typed ``sliding_attention`` without a window is refused.

Qwen3-MoE: no shared expert; a per-head RMSNorm on q and k before RoPE (eps ``rms_norm_eps``);
``attention_bias`` on q, k, v and o; with ``use_sliding_window`` every layer attends to
``sliding_window`` (absent: 4096; ``null``: no window); ``layer_types`` and
``max_window_layers`` are not read by transformers' Qwen3-MoE, nor here. The expert count
is ``num_local_experts`` (what ``Qwen3MoeConfig`` saves), else ``num_experts`` (its alias).

Both: a window at least as long as the context attends to everything, so it maps to no
window. ``head_dim`` is its own field (else ``hidden_size / num_attention_heads``).
``output_router_logits`` and ``router_aux_loss_coef`` only shape training outputs.
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
    MoESpec,
    NormSpec,
)

QWEN2_MOE, QWEN3_MOE = "Qwen2MoeConfig", "Qwen3MoeConfig"
DEFAULT_WINDOW = 4096  # both config classes' sliding_window when the file has none


def sparse_layers(cfg: HFConfig, num_layers: int, num_experts: int) -> tuple[bool, ...]:
    """Which layers are sparse, as transformers' ``Qwen2MoeDecoderLayer`` /
    ``Qwen3MoeDecoderLayer`` decide."""
    step = cfg.int("decoder_sparse_step", 1)
    dense = cfg.raw("mlp_only_layers", [])
    if not isinstance(dense, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in dense
    ):
        raise cfg.error("mlp_only_layers", dense, "a list of layer indices")
    return tuple(
        i not in dense and num_experts > 0 and (i + 1) % step == 0 for i in range(num_layers)
    )


def window_of(cfg: HFConfig) -> int | None:
    """``sliding_window`` when ``use_sliding_window`` (absent: the class default), else None."""
    if not cfg.bool("use_sliding_window", False):
        return None
    return read_sliding_window(cfg) if "sliding_window" in cfg.data else DEFAULT_WINDOW


def qwen2_moe_windows(cfg: HFConfig, num_layers: int) -> tuple[int | None, ...]:
    window, windowed = window_of(cfg), cfg.bool("use_sliding_window", False)
    first_full = cfg.int("max_window_layers", 28, minimum=0)
    derived = [
        SLIDING if windowed and i % 2 == 0 and i < first_full else FULL for i in range(num_layers)
    ]
    types = read_layer_types(cfg, num_layers, derived)
    if SLIDING in types and not window:
        raise cfg.error(
            "layer_types",
            "sliding_attention",
            "full_attention only while use_sliding_window is false",
        )
    return tuple(window if t == SLIDING else None for t in types)


def build(
    cfg: HFConfig,
    *,
    num_experts: int,
    windows: tuple[int | None, ...],
    qkv_bias: bool,
    out_bias: bool,
    qk_norm: bool,
    shared_expert: bool,
    default_top_k: int,
    default_moe_intermediate: int,
) -> ModelSpec:
    """The spec from what the two families share, given what differs."""
    hidden, vocab, heads = (
        cfg.int("hidden_size"),
        cfg.int("vocab_size"),
        cfg.int("num_attention_heads"),
    )
    head_dim, max_pos = cfg.head_dim(), cfg.int("max_position_embeddings", 32768)
    eps = cfg.float("rms_norm_eps", 1e-6, positive=True)
    norm = NormSpec(dim=hidden, norm_type="rms", eps=eps)
    rope = read_rope(cfg, head_dim, max_pos)
    kv_heads, activation = cfg.int("num_key_value_heads", heads), read_activation(cfg)

    def ffn(key: str, default: int | None = None) -> FeedForwardSpec:
        size = cfg.int(key) if default is None else cfg.int(key, default)
        return FeedForwardSpec(hidden_dim=hidden, intermediate_dim=size, activation=activation)

    dense = ffn("intermediate_size")
    sparse = sparse_layers(cfg, len(windows), num_experts)
    moe = None
    if any(sparse):
        top_k = cfg.int("num_experts_per_tok", default_top_k)
        if top_k > num_experts:
            raise cfg.error(
                "num_experts_per_tok", top_k, f"at most the number of experts ({num_experts})"
            )
        shared = ffn("shared_expert_intermediate_size", 5632) if shared_expert else None
        moe = MoESpec(
            hidden_dim=hidden, num_experts=num_experts, top_k=top_k,
            expert=ffn("moe_intermediate_size", default_moe_intermediate),
            renormalize=cfg.bool("norm_topk_prob", False), shared_expert=shared, shared_expert_gate=shared_expert,
            round_routing_weights=True,  # transformers' Qwen routers: router_top_value.to(logits dtype)
        )  # fmt: skip

    def layer(window: int | None, is_sparse: bool) -> DecoderLayerSpec:
        attention = AttentionSpec(
            hidden_dim=hidden, num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim, qkv_bias=qkv_bias,
            out_bias=out_bias, qk_norm=qk_norm, qk_norm_eps=eps, max_seq_len=max_pos,
            rope=rope, sliding_window=window if window is not None and window < max_pos else None,
        )  # fmt: skip
        return DecoderLayerSpec(
            attention=attention, ffn=moe if is_sparse else dense, attn_norm=norm, ffn_norm=norm
        )

    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=vocab, hidden_dim=hidden),
        layers=tuple(layer(w, s) for w, s in zip(windows, sparse, strict=True)),
        final_norm=norm,
        lm_head=LMHeadSpec(
            hidden_dim=hidden, vocab_size=vocab, tied=cfg.bool("tie_word_embeddings", False)
        ),
        max_seq_len=max_pos,
    )


def qwen2_moe_spec(config: Mapping[str, Any]) -> ModelSpec:
    """The spec of the model a Qwen2-MoE ``config.json`` describes."""
    cfg = HFConfig(config, QWEN2_MOE)
    layers = cfg.int("num_hidden_layers")
    return build(
        cfg, num_experts=cfg.int("num_experts", 60, minimum=0), windows=qwen2_moe_windows(cfg, layers),
        qkv_bias=cfg.bool("qkv_bias", True), out_bias=False, qk_norm=False, shared_expert=True,
        default_top_k=4, default_moe_intermediate=1408,
    )  # fmt: skip


def qwen3_moe_spec(config: Mapping[str, Any]) -> ModelSpec:
    """The spec of the model a Qwen3-MoE ``config.json`` describes."""
    cfg = HFConfig(config, QWEN3_MOE)
    layers = cfg.int("num_hidden_layers")
    if cfg.has("num_local_experts"):
        experts = cfg.int("num_local_experts", minimum=0)
    else:
        experts = cfg.int("num_experts", 128, minimum=0)
    bias = cfg.bool("attention_bias", False)
    return build(
        cfg, num_experts=experts, windows=(window_of(cfg),) * layers, qkv_bias=bias, out_bias=bias,
        qk_norm=True, shared_expert=False, default_top_k=8, default_moe_intermediate=768,
    )  # fmt: skip
