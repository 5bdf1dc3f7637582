"""GPT-2 ``config.json`` (transformers' ``GPT2Config``) -> :class:`ModelSpec`.

Learned absolute positions (``n_positions`` of them), LayerNorm with bias before attention
and MLP, fused q/k/v with biases, a plain (ungated) MLP of ``n_inner`` (default
``4 * n_embd``) with ``activation_function`` (``gelu_new``: tanh GELU), tied head by
default. Attention scores are scaled by ``1/sqrt(head_dim)`` unless
``scale_attn_weights`` is false, and further by ``1/(layer + 1)`` with
``scale_attn_by_inverse_layer_idx``, as transformers' ``GPT2Attention`` does.

Read nowhere because they change nothing transformers' ``GPT2LMHeadModel`` outputs at
inference: dropouts, ``summary_*`` (the double-heads model's), ``reorder_and_upcast_attn``
(fp32 scores in the eager path only; ours computes the scores in the model's dtype, the
same numbers in fp32), ``add_cross_attention`` (its layers run only with encoder states;
their tensors are skipped by ``weights.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tttv2.blocks.hf_config import HFConfig, read_activation
from tttv2.core.specs import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    FeedForwardSpec,
    LMHeadSpec,
    ModelSpec,
    NormSpec,
)

OWNER = "GPT2Config"


def model_spec(config: Mapping[str, Any]) -> ModelSpec:
    """The spec of the model a GPT-2 ``config.json`` describes."""
    cfg = HFConfig(config, OWNER)
    hidden, vocab, heads = cfg.int("n_embd"), cfg.int("vocab_size"), cfg.int("n_head")
    head_dim, positions = hidden // heads, cfg.int("n_positions", 1024)  # no head_dim key
    norm = NormSpec(
        dim=hidden,
        norm_type="layer",
        eps=cfg.float("layer_norm_epsilon", 1e-5, positive=True),
        bias=True,
    )
    ffn = FeedForwardSpec(
        hidden_dim=hidden, intermediate_dim=cfg.int("n_inner", None) or 4 * hidden, gated=False, bias=True,
        activation=read_activation(cfg, "activation_function", "gelu_new"),
    )  # fmt: skip
    base_scale = head_dim**-0.5 if cfg.bool("scale_attn_weights", True) else 1.0
    by_layer = cfg.bool("scale_attn_by_inverse_layer_idx", False)

    def layer(i: int) -> DecoderLayerSpec:
        attention = AttentionSpec(
            hidden_dim=hidden, num_heads=heads, head_dim=head_dim, qkv_bias=True, out_bias=True,
            max_seq_len=positions, scale=base_scale / (i + 1) if by_layer else base_scale,
        )  # fmt: skip
        return DecoderLayerSpec(attention=attention, ffn=ffn, attn_norm=norm, ffn_norm=norm)

    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=vocab, hidden_dim=hidden, max_positions=positions),
        layers=tuple(layer(i) for i in range(cfg.int("n_layer"))),
        final_norm=norm,
        lm_head=LMHeadSpec(
            hidden_dim=hidden, vocab_size=vocab, tied=cfg.bool("tie_word_embeddings", True)
        ),
        max_seq_len=positions,
    )
