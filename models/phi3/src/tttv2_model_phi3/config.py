"""Phi-3 ``config.json`` (transformers' ``Phi3Config``: Phi-3, Phi-3.5, Phi-4-mini) ->
:class:`ModelSpec`.

Llama-like (RMSNorm, SwiGLU, GQA) with q/k/v and gate/up fused in the checkpoint (split by
``weights.py``), LongRoPE (``short_factor`` up to ``original_max_position_embeddings``
tokens, ``long_factor`` beyond; the older rule names ``su`` and ``yarn`` mean LongRoPE, as
transformers' ``Phi3Config`` converts them), ``partial_rotary_factor`` (Phi-4-mini rotates
3/4 of each head) and a ``sliding_window`` when set. Dropouts and ``initializer_range``
change nothing at inference.
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

OWNER = "Phi3Config"
#: Rule names Phi3Config rewrites to ``longrope`` (early Phi-3 files).
LONGROPE_ALIASES = ("su", "yarn")


def _with_longrope_aliases(config: Mapping[str, Any]) -> Mapping[str, Any]:
    for key in ("rope_scaling", "rope_parameters"):
        params = config.get(key)
        if isinstance(params, Mapping):
            kind = params.get("rope_type", params.get("type"))
            if kind in LONGROPE_ALIASES:
                fixed = {k: v for k, v in params.items() if k != "type"}
                return {**config, key: {**fixed, "rope_type": "longrope"}}
    return config


def model_spec(config: Mapping[str, Any]) -> ModelSpec:
    """The spec of the model a Phi-3 ``config.json`` describes."""
    cfg = HFConfig(_with_longrope_aliases(config), OWNER)
    hidden, vocab, heads = (
        cfg.int("hidden_size"),
        cfg.int("vocab_size"),
        cfg.int("num_attention_heads"),
    )
    head_dim, max_pos = cfg.head_dim(), cfg.int("max_position_embeddings", 4096)
    norm = NormSpec(dim=hidden, norm_type="rms", eps=cfg.float("rms_norm_eps", 1e-5, positive=True))
    rope = read_rope(cfg, head_dim, max_pos, partial_rotary=True)
    attention = AttentionSpec(
        hidden_dim=hidden, num_heads=heads, num_kv_heads=cfg.int("num_key_value_heads", heads),
        head_dim=head_dim, max_seq_len=max_pos, rope=rope, sliding_window=read_sliding_window(cfg),
    )  # fmt: skip
    ffn = FeedForwardSpec(
        hidden_dim=hidden, intermediate_dim=cfg.int("intermediate_size"), activation=read_activation(cfg),
    )  # fmt: skip
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
