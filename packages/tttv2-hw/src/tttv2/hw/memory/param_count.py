"""Parameter counts computed from specs alone (no weights needed).

A tied LM head reuses the embedding matrix and is counted once. Counts follow the layouts
blocks use (Hugging Face ``[out, in]`` linear weights, one weight per norm, plus biases
where the spec says so).
"""

from __future__ import annotations

from dataclasses import dataclass

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


def attention_params(spec: AttentionSpec) -> int:
    hd, h, hkv, d = spec.head_dim, spec.num_heads, spec.num_kv_heads, spec.hidden_dim
    q, kv = h * hd, hkv * hd  # type: ignore[operator]
    weights = d * q + 2 * d * kv + q * d
    bias = (q + 2 * kv if spec.qkv_bias else 0) + (d if spec.out_bias else 0)
    qk_norm = 2 * hd if spec.qk_norm else 0  # type: ignore[operator]
    return weights + bias + qk_norm


def ffn_params(spec: FeedForwardSpec) -> int:
    d, i = spec.hidden_dim, spec.intermediate_dim
    if spec.gated:
        return 3 * d * i + ((2 * i + d) if spec.bias else 0)
    return 2 * d * i + ((i + d) if spec.bias else 0)


def moe_params(spec: MoESpec) -> int:
    router = spec.hidden_dim * spec.num_experts
    shared = ffn_params(spec.shared_expert) if spec.shared_expert else 0
    gate = spec.hidden_dim if spec.shared_expert_gate else 0
    return router + spec.num_experts * ffn_params(spec.expert) + shared + gate


def norm_params(spec: NormSpec | None) -> int:
    if spec is None:
        return 0
    return spec.dim * (2 if spec.bias else 1)


def embedding_params(spec: EmbeddingSpec) -> int:
    return spec.vocab_size * spec.hidden_dim + (spec.max_positions or 0) * spec.hidden_dim


def lm_head_params(spec: LMHeadSpec) -> int:
    """Zero when tied (the embedding already holds the matrix)."""
    if spec.tied:
        return 0
    return spec.vocab_size * spec.hidden_dim + (spec.vocab_size if spec.bias else 0)


@dataclass(frozen=True)
class LayerParamCount:
    attention: int
    ffn: int  # dense MLP or the whole MoE (router + experts + shared expert)
    norms: int

    @property
    def total(self) -> int:
        return self.attention + self.ffn + self.norms


def layer_params(spec: DecoderLayerSpec) -> LayerParamCount:
    ffn = moe_params(spec.ffn) if isinstance(spec.ffn, MoESpec) else ffn_params(spec.ffn)
    norms = sum(
        norm_params(n)
        for n in (spec.attn_norm, spec.ffn_norm, spec.post_attn_norm, spec.post_ffn_norm)
    )
    return LayerParamCount(attention_params(spec.attention), ffn, norms)


@dataclass(frozen=True)
class ModelParamCount:
    """Parameter counts of a whole model, by component."""

    embedding: int
    layers: tuple[LayerParamCount, ...]
    final_norm: int
    lm_head: int  # 0 when tied

    @property
    def attention(self) -> int:
        return sum(layer.attention for layer in self.layers)

    @property
    def ffn(self) -> int:
        return sum(layer.ffn for layer in self.layers)

    @property
    def norms(self) -> int:
        return sum(layer.norms for layer in self.layers) + self.final_norm

    @property
    def total(self) -> int:
        return (
            self.embedding
            + sum(layer.total for layer in self.layers)
            + self.final_norm
            + self.lm_head
        )


def count_params(spec: ModelSpec) -> ModelParamCount:
    return ModelParamCount(
        embedding=embedding_params(spec.embedding),
        layers=tuple(layer_params(layer) for layer in spec.layers),
        final_norm=norm_params(spec.final_norm),
        lm_head=lm_head_params(spec.lm_head),
    )


def kv_bytes_per_token(spec: ModelSpec, bytes_per_element: float) -> float:
    """Keys and values of every layer for one token: ``sum 2 * Hkv * head_dim * bytes``."""
    # the ignore sits on the product's own line so that `ruff format` cannot move it away
    elements = sum(
        2 * layer.attention.num_kv_heads * layer.attention.head_dim  # type: ignore[operator, misc]
        for layer in spec.layers
    )
    return elements * bytes_per_element
