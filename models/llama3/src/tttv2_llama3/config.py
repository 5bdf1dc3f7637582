"""Llama ``config.json`` (Hugging Face ``LlamaConfig``) -> :class:`ModelSpec`.

Covers Llama 2 (no RoPE scaling, untied head), Llama 3 / 3.1 (``llama3`` RoPE scaling)
and 3.2 (tied embeddings), and the ``linear``, ``dynamic`` and ``yarn`` scalings, in every
spelling transformers reads (``tttv2.blocks.hf_config.read_rope``). Llama's default rotary
embedding ignores ``partial_rotary_factor``, as transformers' does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tttv2.blocks.hf_config import HFConfig, read_activation, read_rope
from tttv2.core.specs import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    FeedForwardSpec,
    LMHeadSpec,
    ModelSpec,
    NormSpec,
    RopeSpec,
)

OWNER = "LlamaConfig"


def rope_spec(config: Mapping[str, Any], head_dim: int) -> RopeSpec:
    cfg = HFConfig(config, OWNER)
    return read_rope(cfg, head_dim, cfg.int("max_position_embeddings", 2048))


def model_spec(config: Mapping[str, Any]) -> ModelSpec:
    """The spec of the model a Llama ``config.json`` describes."""
    cfg = HFConfig(config, OWNER)
    hidden, vocab, heads = (
        cfg.int("hidden_size"),
        cfg.int("vocab_size"),
        cfg.int("num_attention_heads"),
    )
    head_dim, max_pos = cfg.head_dim(), cfg.int("max_position_embeddings", 2048)
    act, bias = read_activation(cfg), cfg.bool("attention_bias", False)
    norm = NormSpec(dim=hidden, norm_type="rms", eps=cfg.float("rms_norm_eps", 1e-6, positive=True))
    rope = read_rope(cfg, head_dim, max_pos)
    if rope.scaling == "dynamic":  # NTK scaling exists to run past max_position_embeddings
        max_pos = int(max_pos * rope.factor)
    attention = AttentionSpec(
        hidden_dim=hidden, num_heads=heads, num_kv_heads=cfg.int("num_key_value_heads", heads),
        head_dim=head_dim, qkv_bias=bias, out_bias=bias, max_seq_len=max_pos, rope=rope,
    )  # fmt: skip
    ffn = FeedForwardSpec(
        hidden_dim=hidden, intermediate_dim=cfg.int("intermediate_size"), activation=act,
        bias=cfg.bool("mlp_bias", False),
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
