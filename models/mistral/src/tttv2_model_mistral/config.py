"""MistralForCausalLM ``config.json`` (transformers' ``MistralConfig``) -> :class:`ModelSpec`.

Written by tools/new_model.py from the fields ``MistralConfig`` declares: the ones
``tttv2.blocks.hf_config`` knows are read below; decide each one in ``TODO`` (read it here
if transformers' MistralForCausalLM uses it, or move it to ``IGNORED``), then empty ``TODO``.
Read only keys transformers honours for this architecture: a key it ignores must not
change our output (list the keys read in README.md).
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

OWNER = "MistralConfig"

#: Declared by MistralConfig and not read yet: map each below, or move it to IGNORED.
TODO: tuple[str, ...] = ()
#: Declared by MistralConfig; no effect on inference output.
IGNORED: tuple[str, ...] = ("initializer_range", "use_cache", "pad_token_id", "attention_dropout")


def model_spec(config: Mapping[str, Any]) -> ModelSpec:
    """The spec of the model a MistralForCausalLM ``config.json`` describes."""
    if TODO:
        raise NotImplementedError(f"{OWNER} -> ModelSpec: decide {', '.join(TODO)} (see config.py)")
    cfg = HFConfig(config, OWNER)
    hidden, vocab = cfg.int("hidden_size"), cfg.int("vocab_size")
    heads = cfg.int("num_attention_heads")
    head_dim = cfg.head_dim()
    max_pos = cfg.int("max_position_embeddings", 131072)
    norm = NormSpec(dim=hidden, norm_type="rms", eps=cfg.float("rms_norm_eps", 1e-06, positive=True))
    window = read_sliding_window(cfg)  # keys within the window, itself included, as transformers
    window = window if window is not None and window < max_pos else None  # else: no limit
    rope = read_rope(cfg, head_dim, max_pos, partial_rotary=False, default_theta=10000.0)
    attention = AttentionSpec(
        hidden_dim=hidden,
        num_heads=heads,
        num_kv_heads=cfg.int("num_key_value_heads", heads),
        head_dim=head_dim,
        qkv_bias=False,
        out_bias=False,
        max_seq_len=max_pos,
        rope=rope,
        sliding_window=window,
    )
    ffn = FeedForwardSpec(
        hidden_dim=hidden,
        intermediate_dim=cfg.int("intermediate_size"),
        activation=read_activation(cfg, "hidden_act", 'silu'),
        bias=False,
    )
    layer = DecoderLayerSpec(attention=attention, ffn=ffn, attn_norm=norm, ffn_norm=norm)
    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=vocab, hidden_dim=hidden),
        layers=(layer,) * cfg.int("num_hidden_layers"),
        final_norm=norm,
        lm_head=LMHeadSpec(hidden_dim=hidden, vocab_size=vocab, tied=cfg.bool("tie_word_embeddings", False)),
        max_seq_len=max_pos,
    )
