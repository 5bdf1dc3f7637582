"""Mixtral ``config.json`` (transformers' ``MixtralConfig``) -> :class:`ModelSpec`.

Mistral's attention (GQA, one ``sliding_window`` for every layer: absent or ``null`` is no
window, ``MixtralConfig``'s default; a window at least as long as the context attends to
everything, so it maps to no window) with a sparse mixture of experts in every layer: a
router ``gate`` over ``num_local_experts`` experts (``num_experts``, transformers' alias,
wins when both are present, as in ``MixtralConfig``), the ``num_experts_per_tok`` best per
token, their softmax weights always renormalised to sum to one, each expert a SwiGLU
feed-forward of ``intermediate_size``. ``router_jitter_noise`` only acts in training;
``output_router_logits`` and ``router_aux_loss_coef`` only shape training outputs.
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
    MoESpec,
    NormSpec,
)

OWNER = "MixtralConfig"
DEFAULT_EXPERTS, DEFAULT_TOP_K = 8, 2  # MixtralConfig's num_local_experts, num_experts_per_tok


def num_experts(cfg: HFConfig) -> int:
    """``num_experts`` (the alias ``MixtralConfig.attribute_map`` routes to
    ``num_local_experts``, and which wins over it), else ``num_local_experts``."""
    if cfg.has("num_experts"):
        return cfg.int("num_experts")
    return cfg.int("num_local_experts", DEFAULT_EXPERTS)


def model_spec(config: Mapping[str, Any]) -> ModelSpec:
    """The spec of the model a Mixtral ``config.json`` describes."""
    cfg = HFConfig(config, OWNER)
    hidden, vocab, heads = (
        cfg.int("hidden_size"),
        cfg.int("vocab_size"),
        cfg.int("num_attention_heads"),
    )
    head_dim, max_pos = cfg.head_dim(), cfg.int("max_position_embeddings", 131072)
    norm = NormSpec(dim=hidden, norm_type="rms", eps=cfg.float("rms_norm_eps", 1e-5, positive=True))
    window = read_sliding_window(cfg)
    attention = AttentionSpec(
        hidden_dim=hidden, num_heads=heads, num_kv_heads=cfg.int("num_key_value_heads", heads),
        head_dim=head_dim, max_seq_len=max_pos, rope=read_rope(cfg, head_dim, max_pos, default_theta=1e6),
        sliding_window=window if window is not None and window < max_pos else None,
    )  # fmt: skip
    expert = FeedForwardSpec(
        hidden_dim=hidden,
        intermediate_dim=cfg.int("intermediate_size"),
        activation=read_activation(cfg),
    )
    experts = num_experts(cfg)
    top_k = cfg.int("num_experts_per_tok", DEFAULT_TOP_K)
    if top_k > experts:
        raise cfg.error("num_experts_per_tok", top_k, f"at most the number of experts ({experts})")
    moe = MoESpec(
        hidden_dim=hidden, num_experts=experts, top_k=top_k, expert=expert, renormalize=True
    )
    layer = DecoderLayerSpec(attention=attention, ffn=moe, attn_norm=norm, ffn_norm=norm)
    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=vocab, hidden_dim=hidden),
        layers=(layer,) * cfg.int("num_hidden_layers"),
        final_norm=norm,
        lm_head=LMHeadSpec(
            hidden_dim=hidden, vocab_size=vocab, tied=cfg.bool("tie_word_embeddings", False)
        ),
        max_seq_len=max_pos,
    )
