"""The cross-field rules of each spec, derived fields, and from_dict edge cases."""

from __future__ import annotations

import math

import pytest

from tttv2.core import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    FeedForwardSpec,
    LMHeadSpec,
    ModelSpec,
    ModuleSpec,
    MoESpec,
    NormSpec,
    RopeSpec,
    SpecError,
    UnknownNameError,
)


def fails(field: str, build, *args, **kwargs) -> SpecError:
    with pytest.raises(SpecError) as info:
        build(*args, **kwargs)
    assert info.value.field == field, str(info.value)
    assert f".{field}=" in str(info.value)
    return info.value


def layer(hidden: int = 64, **changes) -> DecoderLayerSpec:
    base = dict(
        attention=AttentionSpec(hidden_dim=hidden, num_heads=4, num_kv_heads=2),
        ffn=FeedForwardSpec(hidden_dim=hidden, intermediate_dim=128),
        attn_norm=NormSpec(hidden),
        ffn_norm=NormSpec(hidden),
    )
    return DecoderLayerSpec(**{**base, **changes})


def model(**changes) -> ModelSpec:
    base = dict(
        embedding=EmbeddingSpec(vocab_size=100, hidden_dim=64),
        layers=[layer(), layer()],
        final_norm=NormSpec(64),
        lm_head=LMHeadSpec(hidden_dim=64, vocab_size=100, tied=True),
        max_seq_len=1024,
    )
    return ModelSpec(**{**base, **changes})


# -- attention ------------------------------------------------------------------------
def test_attention_derives_kv_heads_and_head_dim() -> None:
    spec = AttentionSpec(hidden_dim=96, num_heads=8)
    assert (spec.num_kv_heads, spec.head_dim, spec.group_size) == (8, 12, 1)
    assert spec.softmax_scale == pytest.approx(1 / math.sqrt(12))
    assert AttentionSpec(hidden_dim=96, num_heads=8, num_kv_heads=1).group_size == 8  # MQA
    assert AttentionSpec(hidden_dim=96, num_heads=8, scale=0.5).softmax_scale == 0.5


def test_heads_must_divide_hidden_unless_head_dim_given() -> None:
    err = fails("num_heads", AttentionSpec, hidden_dim=100, num_heads=8)
    assert "divisor of hidden_dim (100)" in str(err) and "head_dim" in err.expected
    spec = AttentionSpec(hidden_dim=100, num_heads=8, head_dim=32)  # Gemma-style free head_dim
    assert spec.head_dim == 32


def test_query_heads_divisible_by_kv_heads() -> None:
    err = fails("num_kv_heads", AttentionSpec, hidden_dim=64, num_heads=8, num_kv_heads=3)
    assert "divisor of num_heads (8)" in str(err)
    fails("num_kv_heads", AttentionSpec, hidden_dim=64, num_heads=4, num_kv_heads=8)


def test_sliding_window_within_context() -> None:
    fails(
        "sliding_window",
        AttentionSpec,
        hidden_dim=64,
        num_heads=4,
        max_seq_len=128,
        sliding_window=129,
    )
    assert (
        AttentionSpec(
            hidden_dim=64, num_heads=4, max_seq_len=128, sliding_window=128
        ).sliding_window
        == 128
    )


def test_qk_norm_unit_offset_needs_qk_norm() -> None:
    err = fails(
        "qk_norm_unit_offset", AttentionSpec, hidden_dim=64, num_heads=4, qk_norm_unit_offset=True
    )
    assert "unless qk_norm is True" in str(err)
    spec = AttentionSpec(hidden_dim=64, num_heads=4, qk_norm=True, qk_norm_unit_offset=True)
    assert AttentionSpec.from_dict(spec.to_dict()) == spec


def test_attention_rope_must_match_head_dim() -> None:
    fails("rope", AttentionSpec, hidden_dim=64, num_heads=4, rope=RopeSpec(head_dim=8))
    assert (
        AttentionSpec(hidden_dim=64, num_heads=4, rope=RopeSpec(head_dim=16)).rope.rotary_dim == 16
    )


def test_replace_keeps_derived_fields_unless_reset() -> None:
    spec = AttentionSpec(hidden_dim=64, num_heads=4)
    kept = spec.replace(num_heads=8)  # num_kv_heads=4, head_dim=16 stay as derived before
    assert (kept.num_kv_heads, kept.head_dim) == (4, 16)
    fresh = spec.replace(num_heads=8, num_kv_heads=None, head_dim=None)
    assert (fresh.num_kv_heads, fresh.head_dim) == (8, 8)
    fails("num_heads", spec.replace, num_heads=0)


# -- rope -----------------------------------------------------------------------------
def test_rope_rules() -> None:
    assert RopeSpec(head_dim=64).rotary_dim == 64
    assert RopeSpec(head_dim=64, rotary_dim=32).rotary_dim == 32  # partial rotary
    fails("rotary_dim", RopeSpec, head_dim=63)  # derived odd rotary_dim
    fails("rotary_dim", RopeSpec, head_dim=64, rotary_dim=66)
    fails("original_max_position", RopeSpec, head_dim=64, scaling="yarn", factor=4.0)
    fails("low_freq_factor", RopeSpec, head_dim=64, scaling="llama3", original_max_position=8192)
    fails(
        "high_freq_factor",
        RopeSpec,
        head_dim=64,
        scaling="llama3",
        original_max_position=8192,
        low_freq_factor=4.0,
        high_freq_factor=1.0,
    )
    fails(
        "short_factor",
        RopeSpec,
        head_dim=8,
        scaling="longrope",
        original_max_position=4096,
        long_factor=[1, 1, 1, 1],
    )
    fails(
        "long_factor",
        RopeSpec,
        head_dim=8,
        scaling="longrope",
        original_max_position=4096,
        short_factor=[1, 1, 1, 1],
        long_factor=[1, 1, 1],
    )
    spec = RopeSpec(
        head_dim=8,
        scaling="longrope",
        original_max_position=4096,
        short_factor=[1, 2, 3, 4],
        long_factor=(1, 1, 1, 1),
    )
    assert spec.short_factor == (1.0, 2.0, 3.0, 4.0) and spec.long_factor == (1.0,) * 4
    fails("theta", RopeSpec, head_dim=8, theta=math.inf)
    fails("mscale", RopeSpec, head_dim=8, mscale=-1.0)
    assert RopeSpec(head_dim=8, scaling="yarn", original_max_position=8, mscale=0.0).mscale == 0.0


# -- other leaves -----------------------------------------------------------------------
def test_leaf_spec_rules() -> None:
    fails("bias", NormSpec, 64, norm_type="rms", bias=True)
    assert NormSpec(64, norm_type="layer", bias=True).bias
    fails("eps", NormSpec, 64, eps=0.0)
    fails("activation", FeedForwardSpec, 64, 128, activation="swish")
    fails("bias", LMHeadSpec, 64, 100, tied=True, bias=True)
    fails("top_k", MoESpec, 64, num_experts=4, top_k=5, expert=FeedForwardSpec(64, 32))
    fails("expert", MoESpec, 64, num_experts=4, top_k=2, expert=FeedForwardSpec(32, 32))
    fails(
        "shared_expert_gate",
        MoESpec,
        64,
        num_experts=4,
        top_k=2,
        expert=FeedForwardSpec(64, 32),
        shared_expert_gate=True,
    )
    fails("max_positions", EmbeddingSpec, 100, 64, max_positions=0)


# -- composites -------------------------------------------------------------------------
def test_decoder_layer_rules() -> None:
    fails("ffn", layer, ffn=FeedForwardSpec(hidden_dim=32, intermediate_dim=128))
    fails("ffn_norm", layer, ffn_norm=None)
    assert layer(ffn_norm=None, parallel=True).parallel  # GPT-J: one shared norm
    fails("parallel", layer, parallel=True, post_attn_norm=NormSpec(64))
    fails("attn_norm", layer, attn_norm=NormSpec(32))
    fails("post_ffn_norm", layer, post_ffn_norm=NormSpec(32))
    moe = MoESpec(64, num_experts=4, top_k=2, expert=FeedForwardSpec(64, 32))
    assert layer(ffn=moe).ffn is moe
    assert layer().hidden_dim == 64


def test_model_rules() -> None:
    spec = model()
    assert isinstance(spec.layers, tuple) and spec.num_layers == 2  # a list is normalised
    assert (spec.hidden_dim, spec.vocab_size) == (64, 100)
    fails("layers", model, layers=[layer(), layer(hidden=32)])
    fails("layers", model, layers=[])
    fails("layers", model, layers=5)
    fails("layers", model, max_seq_len=8192)  # longer than each layer's attention context
    fails("lm_head", model, lm_head=LMHeadSpec(hidden_dim=64, vocab_size=99, tied=True))
    assert model(lm_head=LMHeadSpec(hidden_dim=64, vocab_size=99)).vocab_size == 99  # untied
    fails("final_norm", model, final_norm=NormSpec(32))
    fails("embedding", model, embedding=NormSpec(64))


def test_model_max_seq_len_within_learned_positions() -> None:
    """GPT-2 learned 1024 positions: a longer context would index past the table."""
    gpt2_embedding = EmbeddingSpec(vocab_size=100, hidden_dim=64, max_positions=1024)
    layers = [
        layer(attention=AttentionSpec(hidden_dim=64, num_heads=4))
    ]  # attention max_seq_len 4096
    err = fails(
        "max_seq_len",
        ModelSpec,
        embedding=gpt2_embedding,
        layers=layers,
        final_norm=NormSpec(64),
        lm_head=LMHeadSpec(hidden_dim=64, vocab_size=100, tied=True),
    )  # default max_seq_len 4096
    assert str(err) == (
        "ModelSpec.max_seq_len=4096 is invalid: expected <= embedding.max_positions (1024), "
        "the number of learned positions"
    )
    assert model(embedding=gpt2_embedding).max_seq_len == 1024  # the fixture's max_seq_len fits
    fails("max_seq_len", model, embedding=gpt2_embedding.replace(max_positions=1023))
    data = model(embedding=gpt2_embedding).to_dict()
    data["embedding"]["max_positions"] = 512
    fails("max_seq_len", ModuleSpec.from_dict, data)


# -- from_dict ------------------------------------------------------------------------
def test_from_dict_nested_specs_need_kind_only_where_ambiguous() -> None:
    data = layer(attention=AttentionSpec(64, 4, rope=RopeSpec(16))).to_dict()
    for key in ("attention", "attn_norm", "ffn_norm"):
        data[key].pop("kind")
    data["attention"]["rope"].pop("kind")
    assert DecoderLayerSpec.from_dict(data) == layer(
        attention=AttentionSpec(64, 4, rope=RopeSpec(16))
    )
    data["ffn"].pop("kind")  # FeedForwardSpec | MoESpec: cannot guess
    err = fails("ffn", DecoderLayerSpec.from_dict, data)
    assert "'feed_forward', 'moe'" in str(err)


def test_from_dict_errors_name_the_path() -> None:
    data = model().to_dict()
    data["layers"][1]["attention"]["num_kv_heads"] = 3
    err = fails("layers[1].attention.num_kv_heads", ModuleSpec.from_dict, data)
    assert str(err).startswith("ModelSpec.layers[1].attention.num_kv_heads=3 is invalid")
    fails("layers", ModuleSpec.from_dict, {**model().to_dict(), "layers": 7})


def test_from_dict_rejects_unknown_missing_and_wrong_kinds() -> None:
    err = fails("hidden", ModuleSpec.from_dict, {"kind": "norm", "dim": 8, "hidden": 3})
    assert "dim" in err.expected and "eps" in err.expected  # lists the real fields
    fails("dim", ModuleSpec.from_dict, {"kind": "norm"})
    fails("kind", NormSpec.from_dict, {"kind": "embedding", "vocab_size": 2, "hidden_dim": 2})
    fails("kind", ModuleSpec.from_dict, {"dim": 8})
    fails("data", ModuleSpec.from_dict, [("kind", "norm")])
    with pytest.raises(UnknownNameError) as info:
        ModuleSpec.from_dict({"kind": "normalisation", "dim": 8})
    assert "'normalisation'" in str(info.value) and "norm" in info.value.known
    assert NormSpec.from_dict({"dim": 8}) == NormSpec(8)  # kind defaults to the class's
