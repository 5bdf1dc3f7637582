"""Llama ``config.json`` (Hugging Face ``LlamaConfig``) -> :class:`ModelSpec`.

Covers Llama 2 (no RoPE scaling, untied head), Llama 3 / 3.1 (``llama3`` RoPE scaling)
and 3.2 (tied embeddings), and the ``linear``, ``dynamic`` and ``yarn`` scalings.
transformers 5 writes RoPE settings as ``rope_parameters`` (theta inside); older
checkpoints have ``rope_theta`` next to ``rope_scaling``.
"""

from __future__ import annotations

from typing import Any

from tttv2.core.errors import SpecError
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

ACTIVATIONS = {"silu": "silu", "gelu": "gelu", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}
REQUIRED = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers")
YARN_KEYS = ("beta_fast", "beta_slow", "attention_factor", "mscale", "mscale_all_dim")


def rope_spec(config: dict[str, Any], head_dim: int) -> RopeSpec:
    params = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    kind = params.get("rope_type", params.get("type", "default"))
    max_pos = config.get("max_position_embeddings", 2048)
    partial = params.get("partial_rotary_factor", config.get("partial_rotary_factor", 1.0))
    theta = float(params.get("rope_theta", config.get("rope_theta", 10000.0)))
    base = dict(
        head_dim=head_dim, rotary_dim=int(head_dim * partial), theta=theta, max_position=max_pos
    )

    def need(key: str) -> Any:
        if params.get(key) is None:
            raise SpecError("LlamaConfig", f"rope_parameters.{key}", None, f"a value for {kind!r}")
        return params[key]

    if kind == "default":
        return RopeSpec(**base)
    if kind in ("linear", "dynamic"):
        return RopeSpec(**base, scaling=kind, factor=float(need("factor")))
    if kind == "llama3":
        return RopeSpec(
            **base,
            scaling="llama3",
            factor=float(need("factor")),
            low_freq_factor=float(need("low_freq_factor")),
            high_freq_factor=float(need("high_freq_factor")),
            original_max_position=need("original_max_position_embeddings"),
        )
    if kind == "yarn":
        original = params.get("original_max_position_embeddings", max_pos)
        return RopeSpec(
            **base,
            scaling="yarn",
            factor=float(params.get("factor") or max_pos / original),
            original_max_position=original,
            truncate=params.get("truncate", True),
            **{key: params.get(key) for key in YARN_KEYS},
        )
    allowed = "one of 'default', 'linear', 'dynamic', 'yarn', 'llama3'"
    raise SpecError("LlamaConfig", "rope_type", kind, allowed)


def model_spec(config: dict[str, Any]) -> ModelSpec:
    """The spec of the model a Llama ``config.json`` describes."""
    for key in (*REQUIRED, "num_attention_heads"):
        if key not in config:
            raise SpecError("LlamaConfig", key, None, "present in config.json")
    hidden, heads, vocab = (
        config["hidden_size"],
        config["num_attention_heads"],
        config["vocab_size"],
    )
    head_dim = config.get("head_dim") or hidden // heads
    max_pos = config.get("max_position_embeddings", 2048)
    act = config.get("hidden_act", "silu")
    if act not in ACTIVATIONS:
        raise SpecError("LlamaConfig", "hidden_act", act, "one of " + ", ".join(ACTIVATIONS))
    bias = bool(config.get("attention_bias", False))
    norm = NormSpec(dim=hidden, norm_type="rms", eps=float(config.get("rms_norm_eps", 1e-6)))
    attention = AttentionSpec(
        hidden_dim=hidden,
        num_heads=heads,
        num_kv_heads=config.get("num_key_value_heads") or heads,
        head_dim=head_dim,
        qkv_bias=bias,
        out_bias=bias,
        max_seq_len=max_pos,
        rope=rope_spec(config, head_dim),
    )
    ffn = FeedForwardSpec(
        hidden_dim=hidden,
        intermediate_dim=config["intermediate_size"],
        activation=ACTIVATIONS[act],
        bias=bool(config.get("mlp_bias", False)),
    )
    layer = DecoderLayerSpec(attention=attention, ffn=ffn, attn_norm=norm, ffn_norm=norm)
    tied = bool(config.get("tie_word_embeddings", False))
    rope = attention.rope
    if rope.scaling == "dynamic":  # NTK scaling exists to run past max_position_embeddings
        max_pos = int(max_pos * rope.factor)
        layer = layer.replace(attention=attention.replace(max_seq_len=max_pos))
    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=vocab, hidden_dim=hidden),
        layers=(layer,) * config["num_hidden_layers"],
        final_norm=norm,
        lm_head=LMHeadSpec(hidden_dim=hidden, vocab_size=vocab, tied=tied),
        max_seq_len=max_pos,
    )
