"""Property tests over invalid *combinations* of fields, each valid on its own: every one
raises a SpecError whose field is the one reported and whose message names the other side
of the rule (the value it must agree with)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from core_spec_strategies import (
    attentions,
    decoder_layers,
    feed_forwards,
    models,
    moes,
    norms,
    ropes,
    sizes,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tttv2.core import AttentionSpec, EmbeddingSpec, LMHeadSpec, ModuleSpec, RopeSpec, SpecError

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rejects(field: str, build: Callable[[], ModuleSpec], *mentions: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        build()
    err = info.value
    message = str(err)
    assert err.field == field, message
    assert message.startswith(f"{err.spec}.{field}="), message
    for text in mentions:
        assert text in message, (text, message)
    return err


# -- attention --------------------------------------------------------------------------
@SETTINGS
@given(spec=attentions(), data=st.data())
def test_kv_heads_must_divide_query_heads(spec: AttentionSpec, data: st.DataObject) -> None:
    kv = data.draw(
        st.integers(1, 4 * spec.num_heads).filter(lambda k: spec.num_heads % k != 0),
        label="num_kv_heads",
    )
    rejects(
        "num_kv_heads",
        lambda: spec.replace(num_kv_heads=kv),
        f"divisor of num_heads ({spec.num_heads})",
    )
    if (
        spec.num_kv_heads > 1
    ):  # the same rule from the other side: query heads that KV heads do not divide
        heads = data.draw(
            st.integers(1, 256).filter(lambda h: h % spec.num_kv_heads != 0), label="num_heads"
        )
        rejects(
            "num_kv_heads",
            lambda: spec.replace(num_heads=heads, head_dim=spec.head_dim),
            f"divisor of num_heads ({heads})",
        )


@SETTINGS
@given(spec=attentions(), data=st.data())
def test_heads_must_divide_hidden_unless_head_dim_is_given(
    spec: AttentionSpec, data: st.DataObject
) -> None:
    assume(spec.num_heads > 1)
    hidden = data.draw(sizes.filter(lambda h: h % spec.num_heads != 0), label="hidden_dim")
    rejects(
        "num_heads",
        lambda: spec.replace(hidden_dim=hidden, head_dim=None),
        f"divisor of hidden_dim ({hidden})",
        "head_dim",
    )
    assert spec.replace(hidden_dim=hidden).head_dim == spec.head_dim  # an explicit head_dim is free


@SETTINGS
@given(spec=attentions(), extra=st.integers(1, 4096))
def test_sliding_window_within_max_seq_len(spec: AttentionSpec, extra: int) -> None:
    rejects(
        "sliding_window",
        lambda: spec.replace(sliding_window=spec.max_seq_len + extra),
        f"max_seq_len ({spec.max_seq_len})",
    )
    if spec.sliding_window is not None and spec.sliding_window > 1:  # shrinking the context instead
        shorter = spec.sliding_window - 1
        rejects(
            "sliding_window", lambda: spec.replace(max_seq_len=shorter), f"max_seq_len ({shorter})"
        )


@SETTINGS
@given(spec=attentions(), extra=st.integers(1, 64))
def test_rope_must_match_the_attention_head_dim(spec: AttentionSpec, extra: int) -> None:
    other = 2 * (spec.head_dim // 2 + extra)  # an even head_dim (a valid RopeSpec) > spec.head_dim
    rejects(
        "rope", lambda: spec.replace(rope=RopeSpec(head_dim=other)), f"head_dim == {spec.head_dim}"
    )


# -- rope and MoE -----------------------------------------------------------------------
@SETTINGS
@given(spec=ropes(), extra=st.integers(1, 64))
def test_rotary_dim_at_most_head_dim(spec, extra: int) -> None:
    rejects(
        "rotary_dim",
        lambda: spec.replace(rotary_dim=spec.head_dim + 2 * extra),
        f"head_dim ({spec.head_dim})",
    )
    if spec.rotary_dim > 1:  # shrinking the head instead
        smaller = spec.rotary_dim - 1
        rejects("rotary_dim", lambda: spec.replace(head_dim=smaller), f"head_dim ({smaller})")


@SETTINGS
@given(spec=moes(), extra=st.integers(1, 64))
def test_moe_top_k_at_most_num_experts(spec, extra: int) -> None:
    rejects(
        "top_k",
        lambda: spec.replace(top_k=spec.num_experts + extra),
        f"num_experts ({spec.num_experts})",
    )
    if spec.top_k > 1:  # fewer experts than are routed to
        fewer = spec.top_k - 1
        rejects("top_k", lambda: spec.replace(num_experts=fewer), f"num_experts ({fewer})")


@SETTINGS
@given(spec=moes(), other=sizes, data=st.data())
def test_moe_experts_match_its_hidden_dim(spec, other: int, data: st.DataObject) -> None:
    assume(other != spec.hidden_dim)
    part = data.draw(st.sampled_from(["expert", "shared_expert"]), label="part")
    rejects(
        part,
        lambda: spec.replace(**{part: data.draw(feed_forwards(other))}),
        f"hidden_dim == {spec.hidden_dim}",
    )


# -- decoder layer ----------------------------------------------------------------------
NORM_PARTS = ["attn_norm", "ffn_norm", "post_attn_norm", "post_ffn_norm"]


@SETTINGS
@given(layer=decoder_layers(), other=sizes, data=st.data())
def test_decoder_layer_parts_match_the_attention_hidden_dim(
    layer, other: int, data: st.DataObject
) -> None:
    hidden = layer.hidden_dim
    assume(other != hidden)
    part = data.draw(st.sampled_from(["ffn", *NORM_PARTS]), label="part")
    if part == "ffn":
        new = data.draw(st.one_of(feed_forwards(other), moes(other)), label="ffn")
    else:
        new = data.draw(norms(other), label=part)
    rejects(part, lambda: layer.replace(**{part: new}), f"attention.hidden_dim ({hidden})")
    # changing the attention instead: the feed-forward no longer matches it
    attention = data.draw(attentions(other), label="attention")
    rejects("ffn", lambda: layer.replace(attention=attention), f"attention.hidden_dim ({other})")


# -- model ------------------------------------------------------------------------------
@SETTINGS
@given(spec=models(), data=st.data())
def test_model_parts_match_the_embedding_hidden_dim(spec, data: st.DataObject) -> None:
    hidden = spec.hidden_dim
    other = data.draw(st.integers(1, 512).filter(lambda h: h != hidden), label="other hidden_dim")
    mention = f"embedding.hidden_dim ({hidden})"
    rejects("final_norm", lambda: spec.replace(final_norm=data.draw(norms(other))), mention)
    rejects("lm_head", lambda: spec.replace(lm_head=LMHeadSpec(other, spec.vocab_size)), mention)
    i = data.draw(st.integers(0, spec.num_layers - 1), label="layer index")
    layer = data.draw(decoder_layers(other, spec.max_seq_len), label="layer")
    layers = spec.layers[:i] + (layer,) + spec.layers[i + 1 :]
    rejects("layers", lambda: spec.replace(layers=layers), f"layer {i} ", mention)
    embedding = EmbeddingSpec(vocab_size=spec.embedding.vocab_size, hidden_dim=other)
    rejects("layers", lambda: spec.replace(embedding=embedding), f"embedding.hidden_dim ({other})")


@SETTINGS
@given(spec=models(), extra=st.integers(1, 4096))
def test_model_max_seq_len_within_every_layer(spec, extra: int) -> None:
    longest = min(layer.attention.max_seq_len for layer in spec.layers) + extra
    rejects("layers", lambda: spec.replace(max_seq_len=longest), f"max_seq_len ({longest})")


@SETTINGS
@given(spec=models(), data=st.data())
def test_model_max_seq_len_within_learned_positions(spec, data: st.DataObject) -> None:
    assume(spec.max_seq_len > 1)
    positions = data.draw(st.integers(1, spec.max_seq_len - 1), label="max_positions")
    embedding = EmbeddingSpec(spec.embedding.vocab_size, spec.hidden_dim, max_positions=positions)
    rejects(
        "max_seq_len",
        lambda: spec.replace(embedding=embedding),
        f"ModelSpec.max_seq_len={spec.max_seq_len} ",
        f"embedding.max_positions ({positions})",
    )
    enough = data.draw(
        st.integers(spec.max_seq_len, 2 * spec.max_seq_len), label="enough positions"
    )
    assert (
        spec.replace(embedding=embedding.replace(max_positions=enough)).embedding.max_positions
        == enough
    )
