"""Hypothesis strategies for the tttv2-core specs, written from the spec docstrings.

``valid_specs()`` draws any valid spec of any kind; ``INVALID`` maps each spec class to
``{field: strategy of values that are invalid for that field whatever the other fields
hold}`` (wrong type, not positive, not finite, not one of the allowed names, ...).
"""

from __future__ import annotations

import math

from hypothesis import strategies as st

from tttv2.core import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    FeedForwardSpec,
    KVCacheSpec,
    LMHeadSpec,
    ModelSpec,
    MoESpec,
    NormSpec,
    RopeSpec,
)
from tttv2.core.specs import ACTIVATIONS, NORM_TYPES, ROPE_SCALINGS

sizes = st.integers(1, 4096)
small = st.integers(1, 64)
pos_floats = st.floats(min_value=1e-9, max_value=1e9, allow_nan=False, allow_infinity=False)
maybe = st.none().__or__


# -- valid specs ------------------------------------------------------------------------
def norms(dim: int | None = None) -> st.SearchStrategy[NormSpec]:
    @st.composite
    def build(draw: st.DrawFn) -> NormSpec:
        norm_type = draw(st.sampled_from(NORM_TYPES))
        return NormSpec(
            dim=dim if dim is not None else draw(sizes),
            norm_type=norm_type,
            eps=draw(pos_floats),
            unit_offset=draw(st.booleans()),
            bias=draw(st.booleans()) if norm_type == "layer" else False,
        )

    return build()


def feed_forwards(hidden: int | None = None) -> st.SearchStrategy[FeedForwardSpec]:
    return st.builds(
        FeedForwardSpec,
        hidden_dim=st.just(hidden) if hidden is not None else sizes,
        intermediate_dim=sizes,
        activation=st.sampled_from(ACTIVATIONS),
        gated=st.booleans(),
        bias=st.booleans(),
    )


@st.composite
def moes(draw: st.DrawFn, hidden: int | None = None) -> MoESpec:
    hidden = hidden if hidden is not None else draw(sizes)
    num_experts = draw(small)
    shared = draw(maybe(feed_forwards(hidden)))
    return MoESpec(
        hidden_dim=hidden,
        num_experts=num_experts,
        top_k=draw(st.integers(1, num_experts)),
        expert=draw(feed_forwards(hidden)),
        renormalize=draw(st.booleans()),
        shared_expert=shared,
        shared_expert_gate=draw(st.booleans()) if shared is not None else False,
        round_routing_weights=draw(st.booleans()),
    )


embeddings = st.builds(
    EmbeddingSpec,
    vocab_size=sizes,
    hidden_dim=sizes,
    scale=maybe(pos_floats),
    max_positions=maybe(sizes),
)


@st.composite
def lm_heads(draw: st.DrawFn) -> LMHeadSpec:
    tied = draw(st.booleans())
    return LMHeadSpec(
        hidden_dim=draw(sizes),
        vocab_size=draw(sizes),
        tied=tied,
        bias=False if tied else draw(st.booleans()),
        final_logit_softcap=draw(maybe(pos_floats)),
    )


kv_caches = st.builds(
    KVCacheSpec, num_kv_heads=small, head_dim=sizes, max_seq_len=sizes, max_batch=small
)


@st.composite
def ropes(draw: st.DrawFn, head_dim: int | None = None) -> RopeSpec:
    if head_dim is None:
        head_dim = draw(st.integers(2, 512))
    rotary_dim = draw(st.integers(1, head_dim // 2)) * 2
    if rotary_dim == head_dim and draw(st.booleans()):
        rotary_dim = None  # derived: the whole head
    scaling = draw(st.sampled_from(ROPE_SCALINGS))
    kw: dict = {}
    if scaling not in ("default", "linear", "dynamic"):
        kw["original_max_position"] = draw(sizes)
    if scaling == "llama3":
        low = draw(st.floats(0.1, 10))
        kw["low_freq_factor"] = low
        kw["high_freq_factor"] = low + draw(st.floats(0.1, 10))
    if scaling == "yarn":
        kw["beta_fast"] = draw(maybe(pos_floats))
        kw["beta_slow"] = draw(maybe(pos_floats))
        kw["mscale"] = draw(maybe(st.floats(0, 10)))
        kw["mscale_all_dim"] = draw(maybe(st.floats(0, 10)))
        kw["truncate"] = draw(st.booleans())
    if scaling == "longrope":
        half = (rotary_dim or head_dim) // 2
        factors = st.lists(st.floats(0.5, 64), min_size=half, max_size=half).map(tuple)
        kw["short_factor"] = draw(factors)
        kw["long_factor"] = draw(factors)
    if scaling != "default":
        kw["attention_factor"] = draw(maybe(pos_floats))
    spec = RopeSpec(
        head_dim=head_dim,
        rotary_dim=rotary_dim,
        theta=draw(st.floats(1.0, 1e7)),
        max_position=draw(sizes),
        scaling=scaling,
        factor=draw(st.floats(1.0, 64.0)),
        interleaved=draw(st.booleans()),
        **kw,
    )
    return spec


@st.composite
def attentions(draw: st.DrawFn, hidden: int | None = None) -> AttentionSpec:
    num_kv_heads = draw(st.integers(1, 8))
    num_heads = num_kv_heads * draw(st.integers(1, 8))
    explicit_head_dim = draw(st.booleans())
    if hidden is None:
        hidden = num_heads * draw(st.integers(1, 64)) if not explicit_head_dim else draw(sizes)
    head_dim = draw(st.integers(1, 256)) if explicit_head_dim or hidden % num_heads else None
    max_seq_len = draw(sizes)
    real_head_dim = head_dim if head_dim is not None else hidden // num_heads
    rope = draw(maybe(ropes(real_head_dim))) if real_head_dim >= 2 else None
    return AttentionSpec(
        hidden_dim=hidden,
        num_heads=num_heads,
        num_kv_heads=draw(st.sampled_from([num_kv_heads, None]))
        if num_kv_heads == num_heads
        else num_kv_heads,
        head_dim=head_dim,
        qkv_bias=draw(st.booleans()),
        out_bias=draw(st.booleans()),
        qk_norm=(qk_norm := draw(st.booleans())),
        qk_norm_eps=draw(pos_floats),
        qk_norm_unit_offset=qk_norm and draw(st.booleans()),
        sliding_window=draw(maybe(st.integers(1, max_seq_len))),
        logit_softcap=draw(maybe(pos_floats)),
        scale=draw(maybe(pos_floats)),
        max_seq_len=max_seq_len,
        rope=rope,
    )


@st.composite
def decoder_layers(
    draw: st.DrawFn, hidden: int | None = None, min_max_seq_len: int = 1
) -> DecoderLayerSpec:
    attention = draw(attentions(hidden))
    if attention.max_seq_len < min_max_seq_len:
        attention = attention.replace(max_seq_len=min_max_seq_len, sliding_window=None)
    h = attention.hidden_dim
    parallel = draw(st.booleans())
    return DecoderLayerSpec(
        attention=attention,
        ffn=draw(st.one_of(feed_forwards(h), moes(h))),
        attn_norm=draw(norms(h)),
        ffn_norm=draw(maybe(norms(h))) if parallel else draw(norms(h)),
        post_attn_norm=None if parallel else draw(maybe(norms(h))),
        post_ffn_norm=None if parallel else draw(maybe(norms(h))),
        parallel=parallel,
    )


@st.composite
def models(draw: st.DrawFn) -> ModelSpec:
    hidden = draw(st.integers(1, 8)) * draw(st.sampled_from([1, 8, 64]))
    vocab = draw(sizes)
    max_seq_len = draw(st.integers(1, 8192))
    tied = draw(st.booleans())
    return ModelSpec(
        embedding=EmbeddingSpec(
            vocab_size=vocab,
            hidden_dim=hidden,
            scale=draw(maybe(pos_floats)),
            max_positions=draw(maybe(st.integers(max_seq_len, 2 * max_seq_len))),
        ),
        layers=draw(st.lists(decoder_layers(hidden, max_seq_len), min_size=1, max_size=3)),
        final_norm=draw(norms(hidden)),
        lm_head=LMHeadSpec(hidden_dim=hidden, vocab_size=vocab if tied else draw(sizes), tied=tied),
        max_seq_len=max_seq_len,
    )


VALID = {
    NormSpec: norms(),
    FeedForwardSpec: feed_forwards(),
    MoESpec: moes(),
    EmbeddingSpec: embeddings,
    LMHeadSpec: lm_heads(),
    KVCacheSpec: kv_caches,
    RopeSpec: ropes(),
    AttentionSpec: attentions(),
    DecoderLayerSpec: decoder_layers(),
    ModelSpec: models(),
}


def valid_specs() -> st.SearchStrategy:
    return st.one_of(*VALID.values())


# -- invalid values per field -----------------------------------------------------------
not_positive_int = st.sampled_from([0, -1, -4096, 1.5, 2.0, "8", True, [4]])
not_positive_int_required = st.one_of(not_positive_int, st.just(None))
not_positive_float = st.sampled_from(
    [0, 0.0, -1e-6, -3, math.nan, math.inf, -math.inf, "1e-5", True, [1.0]]
)
not_positive_float_required = st.one_of(not_positive_float, st.just(None))
not_bool = st.sampled_from([0, 1, "True", "false", None, 1.0])
not_name = st.sampled_from(["", "nope", "RMS", None, 3, True])
not_spec = st.sampled_from([3, "spec", {}, (), None, KVCacheSpec(1, 1, 1)])

INVALID: dict[type, dict[str, st.SearchStrategy]] = {
    NormSpec: {
        "dim": not_positive_int_required,
        "norm_type": not_name,
        "eps": not_positive_float_required,
        "unit_offset": not_bool,
        "bias": not_bool,
    },
    FeedForwardSpec: {
        "hidden_dim": not_positive_int_required,
        "intermediate_dim": not_positive_int_required,
        "activation": not_name,
        "gated": not_bool,
        "bias": not_bool,
    },
    MoESpec: {
        "hidden_dim": not_positive_int_required,
        "num_experts": not_positive_int_required,
        "top_k": not_positive_int_required,
        "expert": not_spec,
        "renormalize": not_bool,
        "shared_expert": not_spec.filter(lambda v: v is not None),
        "shared_expert_gate": not_bool,
        "round_routing_weights": not_bool,
    },
    EmbeddingSpec: {
        "vocab_size": not_positive_int_required,
        "hidden_dim": not_positive_int_required,
        "scale": not_positive_float,
        "max_positions": not_positive_int,
    },
    LMHeadSpec: {
        "hidden_dim": not_positive_int_required,
        "vocab_size": not_positive_int_required,
        "tied": not_bool,
        "bias": not_bool,
        "final_logit_softcap": not_positive_float,
    },
    KVCacheSpec: {
        f: not_positive_int_required
        for f in ("num_kv_heads", "head_dim", "max_seq_len", "max_batch")
    },
    RopeSpec: {
        "head_dim": not_positive_int_required,
        "rotary_dim": st.sampled_from([0, -2, 3, 4.0, "8", True]),
        "theta": not_positive_float_required,
        "max_position": not_positive_int_required,
        "scaling": not_name,
        "factor": not_positive_float,
        "original_max_position": not_positive_int,
        "low_freq_factor": not_positive_float,
        "high_freq_factor": not_positive_float,
        "beta_fast": not_positive_float,
        "beta_slow": not_positive_float,
        "attention_factor": not_positive_float,
        "mscale": st.sampled_from([-1, -0.5, math.nan, math.inf, "1", True]),
        "mscale_all_dim": st.sampled_from([-1, math.nan, math.inf, "1", False]),
        "truncate": not_bool,
        "interleaved": not_bool,
        "short_factor": st.sampled_from(
            [(), (1.0,) * 1000, "abc", 5, (0.0,) * 1000, ("x",) * 1000]
        ),
        "long_factor": st.sampled_from(
            [(), (1.0,) * 1000, "abc", 5, (-1.0,) * 1000, (math.nan,) * 1000]
        ),
    },
    AttentionSpec: {
        "hidden_dim": not_positive_int_required,
        "num_heads": not_positive_int_required,
        "num_kv_heads": not_positive_int,
        "head_dim": not_positive_int,
        "qkv_bias": not_bool,
        "out_bias": not_bool,
        "qk_norm": not_bool,
        "qk_norm_unit_offset": not_bool,
        "qk_norm_eps": not_positive_float_required,
        "sliding_window": not_positive_int,
        "logit_softcap": not_positive_float,
        "scale": not_positive_float,
        "max_seq_len": not_positive_int_required,
        "rope": not_spec.filter(lambda v: v is not None),
    },
    DecoderLayerSpec: {
        "attention": not_spec,
        "ffn": not_spec,
        "attn_norm": not_spec,
        "ffn_norm": not_spec.filter(lambda v: v is not None),
        "post_attn_norm": not_spec.filter(lambda v: v is not None),
        "post_ffn_norm": not_spec.filter(lambda v: v is not None),
        "parallel": not_bool,
    },
    ModelSpec: {
        "embedding": not_spec,
        "layers": st.sampled_from([(), [], 3, "layers", None, (KVCacheSpec(1, 1, 1),)]),
        "final_norm": not_spec,
        "lm_head": not_spec,
        "max_seq_len": not_positive_int_required,
    },
}
