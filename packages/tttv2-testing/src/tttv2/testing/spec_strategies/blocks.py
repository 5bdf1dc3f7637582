"""Hypothesis strategies for small valid block specs (fast enough for property tests).

Every strategy takes the dimensions a caller needs to fix (``hidden_dim``, ...) as
arguments, so specs composed into a layer or a model agree with each other.
"""

from __future__ import annotations

from hypothesis import strategies as st

from tttv2.core.specs import (
    ACTIVATIONS,
    NORM_TYPES,
    AttentionSpec,
    EmbeddingSpec,
    FeedForwardSpec,
    KVCacheSpec,
    LMHeadSpec,
    MoESpec,
    NormSpec,
)
from tttv2.testing.spec_strategies.rope import rope_specs

EPS = (1e-6, 1e-5)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def attention_specs(
    draw: st.DrawFn,
    hidden_dim: int | None = None,
    max_seq_len: int | None = None,
    rope: bool | None = None,
    max_heads: int = 8,
) -> AttentionSpec:
    """MHA/GQA/MQA with every optional feature drawn. ``rope``: True always, False never,
    None sometimes. With ``hidden_dim`` fixed, heads are chosen to divide it or an
    explicit ``head_dim`` is drawn."""
    num_heads = draw(st.integers(1, max_heads))
    num_kv_heads = draw(st.sampled_from(_divisors(num_heads)))
    explicit_head_dim = draw(st.booleans())
    if hidden_dim is None:
        head_dim = draw(st.integers(1, 8).map(lambda n: 2 * n))
        hidden_dim = num_heads * head_dim if not explicit_head_dim else draw(st.integers(4, 64))
    elif explicit_head_dim or hidden_dim % num_heads:
        head_dim = draw(st.integers(1, 8).map(lambda n: 2 * n))
        explicit_head_dim = True
    else:
        head_dim = hidden_dim // num_heads
    max_seq_len = max_seq_len or draw(st.integers(16, 256))
    use_rope = draw(st.booleans()) if rope is None else rope
    if use_rope and head_dim % 2:
        head_dim, explicit_head_dim = head_dim + 1, True
    return AttentionSpec(
        hidden_dim=hidden_dim,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        head_dim=head_dim if explicit_head_dim else None,
        qkv_bias=draw(st.booleans()),
        out_bias=draw(st.booleans()),
        qk_norm=(qk_norm := draw(st.booleans())),
        qk_norm_eps=draw(st.sampled_from(EPS)),
        qk_norm_unit_offset=qk_norm and draw(st.booleans()),
        sliding_window=draw(st.one_of(st.none(), st.integers(1, max_seq_len))),
        logit_softcap=draw(st.one_of(st.none(), st.sampled_from([5.0, 30.0, 50.0]))),
        scale=draw(st.one_of(st.none(), st.floats(0.05, 1.0))),
        max_seq_len=max_seq_len,
        rope=draw(rope_specs(head_dim=head_dim, max_position=max_seq_len)) if use_rope else None,
    )


@st.composite
def norm_specs(
    draw: st.DrawFn, dim: int | None = None, norm_types: tuple[str, ...] = NORM_TYPES
) -> NormSpec:
    """RMSNorm or LayerNorm, with or without unit offset and (LayerNorm) bias."""
    norm_type = draw(st.sampled_from(norm_types))
    return NormSpec(
        dim=dim or draw(st.integers(1, 64)),
        norm_type=norm_type,
        eps=draw(st.sampled_from(EPS)),
        unit_offset=draw(st.booleans()),
        bias=draw(st.booleans()) if norm_type == "layer" else False,
    )


@st.composite
def ffn_specs(
    draw: st.DrawFn, hidden_dim: int | None = None, gated: bool | None = None
) -> FeedForwardSpec:
    """Gated (SwiGLU/GeGLU) or plain MLP with any activation, with or without bias."""
    return FeedForwardSpec(
        hidden_dim=hidden_dim or draw(st.integers(1, 64)),
        intermediate_dim=draw(st.integers(1, 96)),
        activation=draw(st.sampled_from(ACTIVATIONS)),
        gated=draw(st.booleans()) if gated is None else gated,
        bias=draw(st.booleans()),
    )


@st.composite
def moe_specs(draw: st.DrawFn, hidden_dim: int | None = None, max_experts: int = 8) -> MoESpec:
    """Top-k routing over up to ``max_experts`` experts, optional (gated) shared expert."""
    hidden_dim = hidden_dim or draw(st.integers(1, 48))
    num_experts = draw(st.integers(1, max_experts))
    shared = draw(st.one_of(st.none(), ffn_specs(hidden_dim=hidden_dim)))
    return MoESpec(
        hidden_dim=hidden_dim,
        num_experts=num_experts,
        top_k=draw(st.integers(1, num_experts)),
        expert=draw(ffn_specs(hidden_dim=hidden_dim)),
        renormalize=draw(st.booleans()),
        shared_expert=shared,
        shared_expert_gate=draw(st.booleans()) if shared is not None else False,
    )


@st.composite
def embedding_specs(
    draw: st.DrawFn,
    hidden_dim: int | None = None,
    vocab_size: int | None = None,
    min_positions: int = 16,
) -> EmbeddingSpec:
    """Token embedding, optionally scaled (Gemma) and with learned positions (GPT-2): at
    least ``min_positions`` of them (a model's ``max_seq_len``), at most 256 or that."""
    hidden_dim = hidden_dim or draw(st.integers(1, 64))
    return EmbeddingSpec(
        vocab_size=vocab_size or draw(st.integers(2, 256)),
        hidden_dim=hidden_dim,
        scale=draw(st.one_of(st.none(), st.just(float(hidden_dim) ** 0.5), st.floats(0.1, 10.0))),
        max_positions=draw(
            st.one_of(st.none(), st.integers(min_positions, max(min_positions, 256)))
        ),
    )


@st.composite
def lm_head_specs(
    draw: st.DrawFn, hidden_dim: int | None = None, vocab_size: int | None = None
) -> LMHeadSpec:
    """Tied or untied head, with or without bias (untied only) and final soft-capping."""
    tied = draw(st.booleans())
    return LMHeadSpec(
        hidden_dim=hidden_dim or draw(st.integers(1, 64)),
        vocab_size=vocab_size or draw(st.integers(2, 256)),
        tied=tied,
        bias=False if tied else draw(st.booleans()),
        final_logit_softcap=draw(st.one_of(st.none(), st.sampled_from([10.0, 30.0]))),
    )


@st.composite
def kv_cache_specs(draw: st.DrawFn) -> KVCacheSpec:
    return KVCacheSpec(
        num_kv_heads=draw(st.integers(1, 8)),
        head_dim=draw(st.integers(1, 32)),
        max_seq_len=draw(st.integers(1, 512)),
        max_batch=draw(st.integers(1, 8)),
    )
