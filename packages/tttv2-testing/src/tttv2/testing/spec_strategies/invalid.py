"""Invalid spec arguments, each with the field whose ``SpecError`` it must raise.

Every case starts from a *valid* spec and changes one thing, so the only reason for the
spec to be rejected is that change. Use :func:`invalid_cases` to enumerate all cases for
one spec, or the hypothesis strategy :func:`invalid_spec_kwargs` over random specs::

    @given(invalid_spec_kwargs(AttentionSpec))
    def test_rejected(case):
        with pytest.raises(SpecError) as err:
            case.build()
        assert err.value.field == case.field
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from tttv2.core.specs import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    FeedForwardSpec,
    KVCacheSpec,
    LMHeadSpec,
    ModelSpec,
    ModuleSpec,
    MoESpec,
    NormSpec,
    RopeSpec,
)
from tttv2.testing.spec_strategies.blocks import (
    attention_specs,
    embedding_specs,
    ffn_specs,
    kv_cache_specs,
    lm_head_specs,
    moe_specs,
    norm_specs,
)
from tttv2.testing.spec_strategies.composite import decoder_layer_specs, model_specs
from tttv2.testing.spec_strategies.rope import rope_specs


@dataclass(frozen=True)
class InvalidSpecCase:
    """Constructor arguments for ``spec_class`` that must raise a SpecError naming ``field``."""

    spec_class: type[ModuleSpec]
    kwargs: dict[str, Any]
    field: str
    change: str  # what was changed, for messages

    def build(self) -> ModuleSpec:
        return self.spec_class(**self.kwargs)

    def __repr__(self) -> str:
        return f"InvalidSpecCase({self.spec_class.__name__}: {self.change} -> SpecError on {self.field!r})"


Change = tuple[dict[str, Any], str]  # (field changes, field the error must name)
Mutator = Callable[[Any], list[Change]]

NOT_POSITIVE_INT = (0, -1, 2.5, True, "8")
NOT_POSITIVE_FLOAT = (0.0, -1.0, math.inf, math.nan, True, "1.0")
NOT_BOOL = ("yes", 1, None)


def _each(field: str, values: tuple[Any, ...]) -> Mutator:
    return lambda spec: [({field: v}, field) for v in values]


def _fields(values: tuple[Any, ...], *names: str) -> list[Mutator]:
    return [_each(n, values) for n in names]


def _attention(spec: AttentionSpec) -> list[Change]:
    assert spec.head_dim is not None  # AttentionSpec.validate() set it
    other_rope = RopeSpec(head_dim=spec.head_dim + 2)
    return [
        ({"num_kv_heads": spec.num_heads + 1}, "num_kv_heads"),
        ({"num_kv_heads": 0}, "num_kv_heads"),
        ({"head_dim": 0}, "head_dim"),
        ({"sliding_window": spec.max_seq_len + 1}, "sliding_window"),
        ({"sliding_window": 0}, "sliding_window"),
        ({"rope": other_rope}, "rope"),
        ({"rope": "rope"}, "rope"),
    ]


def _rope(spec: RopeSpec) -> list[Change]:
    assert spec.rotary_dim is not None  # RopeSpec.validate() set it
    half = spec.rotary_dim // 2
    out: list[Change] = [
        ({"rotary_dim": spec.head_dim + 2}, "rotary_dim"),
        ({"scaling": "ntk"}, "scaling"),
        ({"scaling": spec.scaling.upper()}, "scaling"),
        ({"original_max_position": 0}, "original_max_position"),
        ({"mscale": -1.0}, "mscale"),
        ({"mscale_all_dim": math.inf}, "mscale_all_dim"),
        ({"low_freq_factor": 0.0}, "low_freq_factor"),
        ({"high_freq_factor": -1.0}, "high_freq_factor"),
        ({"short_factor": (1.0,) * (half + 1)}, "short_factor"),
        ({"long_factor": (0.0,) * half}, "long_factor"),
    ]
    if spec.rotary_dim > 2:
        out.append(({"rotary_dim": spec.rotary_dim - 1}, "rotary_dim"))
    if spec.scaling in ("yarn", "llama3", "longrope"):
        out.append(({"original_max_position": None}, "original_max_position"))
    if spec.scaling == "llama3":
        out.append(({"high_freq_factor": spec.low_freq_factor}, "high_freq_factor"))
        out.append(({"low_freq_factor": None}, "low_freq_factor"))
    if spec.scaling == "longrope":
        out.append(({"short_factor": None}, "short_factor"))
        out.append(({"long_factor": None}, "long_factor"))
    return out


def _norm(spec: NormSpec) -> list[Change]:
    out: list[Change] = [({"norm_type": "batch"}, "norm_type"), ({"norm_type": "RMS"}, "norm_type")]
    if spec.norm_type == "rms":
        out.append(({"bias": True}, "bias"))
    return out


def _moe(spec: MoESpec) -> list[Change]:
    wrong = FeedForwardSpec(hidden_dim=spec.hidden_dim + 1, intermediate_dim=4)
    out: list[Change] = [
        ({"top_k": spec.num_experts + 1}, "top_k"),
        ({"expert": wrong}, "expert"),
        ({"expert": "mlp"}, "expert"),
        ({"shared_expert": wrong}, "shared_expert"),
    ]
    if spec.shared_expert is None:
        out.append(({"shared_expert_gate": True}, "shared_expert_gate"))
    return out


def _lm_head(spec: LMHeadSpec) -> list[Change]:
    return [({"bias": True}, "bias")] if spec.tied else [({"bias": True, "tied": True}, "bias")]


def _decoder_layer(spec: DecoderLayerSpec) -> list[Change]:
    h = spec.hidden_dim
    wrong_norm = NormSpec(dim=h + 1)
    out: list[Change] = [
        ({"attention": "attention"}, "attention"),
        ({"ffn": "mlp"}, "ffn"),
        ({"ffn": FeedForwardSpec(hidden_dim=h + 1, intermediate_dim=4)}, "ffn"),
        ({"attn_norm": wrong_norm}, "attn_norm"),
        ({"attn_norm": None}, "attn_norm"),
        ({"ffn_norm": wrong_norm}, "ffn_norm"),
        ({"post_attn_norm": wrong_norm}, "post_attn_norm"),
        ({"post_ffn_norm": wrong_norm}, "post_ffn_norm"),
    ]
    if not spec.parallel:
        out.append(({"ffn_norm": None}, "ffn_norm"))
    if spec.post_attn_norm is not None or spec.post_ffn_norm is not None:
        out.append(({"parallel": True}, "parallel"))
    return out


def _model(spec: ModelSpec) -> list[Change]:
    h = spec.hidden_dim
    layer = spec.layers[0]
    # a first layer whose context is one short of the model's (only buildable without a
    # sliding window, which may not exceed the narrowed context)
    narrowable = spec.max_seq_len > 1 and layer.attention.sliding_window is None
    narrow_attention = (
        layer.attention.replace(max_seq_len=spec.max_seq_len - 1) if narrowable else None
    )
    out: list[Change] = [
        ({"embedding": "embedding"}, "embedding"),
        ({"layers": ()}, "layers"),
        ({"layers": ("layer",)}, "layers"),
        ({"layers": layer}, "layers"),
        ({"final_norm": NormSpec(dim=h + 1)}, "final_norm"),
        ({"lm_head": LMHeadSpec(hidden_dim=h + 1, vocab_size=spec.vocab_size)}, "lm_head"),
        (
            {
                "lm_head": LMHeadSpec(
                    hidden_dim=h, vocab_size=spec.embedding.vocab_size + 1, tied=True
                )
            },
            "lm_head",
        ),
        ({"max_seq_len": max(x.attention.max_seq_len for x in spec.layers) + 1}, "layers"),
    ]
    if narrow_attention is not None:
        out.append(
            ({"layers": (layer.replace(attention=narrow_attention), *spec.layers[1:])}, "layers")
        )
    return out


MUTATORS: dict[type[ModuleSpec], list[Mutator]] = {
    AttentionSpec: [
        *_fields(NOT_POSITIVE_INT, "hidden_dim", "num_heads", "max_seq_len"),
        *_fields(NOT_BOOL, "qkv_bias", "out_bias", "qk_norm", "qk_norm_unit_offset"),
        *_fields(NOT_POSITIVE_FLOAT, "qk_norm_eps"),
        *_fields((0.0, -5.0, math.inf, "30"), "logit_softcap", "scale"),
        _attention,
    ],
    RopeSpec: [
        *_fields(NOT_POSITIVE_INT, "head_dim", "max_position"),
        *_fields(NOT_POSITIVE_FLOAT, "theta", "factor"),
        *_fields((0.0, -1.0), "beta_fast", "beta_slow", "attention_factor"),
        *_fields(("no", 0), "truncate", "interleaved"),
        _rope,
    ],
    NormSpec: [
        *_fields(NOT_POSITIVE_INT, "dim"),
        *_fields(NOT_POSITIVE_FLOAT, "eps"),
        *_fields(NOT_BOOL, "unit_offset"),
        _each("bias", ("yes",)),
        _norm,
    ],
    FeedForwardSpec: [
        *_fields(NOT_POSITIVE_INT, "hidden_dim", "intermediate_dim"),
        _each("activation", ("tanh", "SiLU", None)),
        *_fields(NOT_BOOL, "gated", "bias"),
    ],
    MoESpec: [
        *_fields(NOT_POSITIVE_INT, "hidden_dim", "num_experts", "top_k"),
        *_fields(NOT_BOOL, "renormalize", "shared_expert_gate"),
        _moe,
    ],
    EmbeddingSpec: [
        *_fields(NOT_POSITIVE_INT, "vocab_size", "hidden_dim"),
        _each("scale", (0.0, -1.0, math.inf, math.nan)),
        _each("max_positions", (0, -1, 2.5)),
    ],
    LMHeadSpec: [
        *_fields(NOT_POSITIVE_INT, "hidden_dim", "vocab_size"),
        *_fields(("yes", None), "tied", "bias"),
        _each("final_logit_softcap", (0.0, -1.0, math.inf)),
        _lm_head,
    ],
    KVCacheSpec: [
        *_fields(NOT_POSITIVE_INT, "num_kv_heads", "head_dim", "max_seq_len", "max_batch")
    ],
    DecoderLayerSpec: [_each("parallel", ("yes", 1)), _decoder_layer],
    ModelSpec: [_each("max_seq_len", (0, -1)), _model],
}

VALID_SPECS: dict[type[ModuleSpec], Callable[[], st.SearchStrategy[Any]]] = {
    AttentionSpec: attention_specs,
    RopeSpec: rope_specs,
    NormSpec: norm_specs,
    FeedForwardSpec: ffn_specs,
    MoESpec: moe_specs,
    EmbeddingSpec: embedding_specs,
    LMHeadSpec: lm_head_specs,
    KVCacheSpec: kv_cache_specs,
    DecoderLayerSpec: decoder_layer_specs,
    ModelSpec: model_specs,
}


def specs_for(spec_class: type[ModuleSpec]) -> st.SearchStrategy[Any]:
    """The valid-spec strategy of ``spec_class``."""
    try:
        return VALID_SPECS[spec_class]()
    except KeyError:
        known = ", ".join(c.__name__ for c in VALID_SPECS)
        raise ValueError(f"no spec strategy for {spec_class!r}; known: {known}") from None


def invalid_cases(spec: ModuleSpec) -> list[InvalidSpecCase]:
    """Every single-change invalid variant of the valid ``spec`` this module knows."""
    cls = type(spec)
    if cls not in MUTATORS:
        known = ", ".join(c.__name__ for c in MUTATORS)
        raise ValueError(f"no invalid cases for {cls.__name__}; known: {known}")
    base = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}  # type: ignore[arg-type]
    cases = []
    for mutate in MUTATORS[cls]:
        for changes, field in mutate(spec):
            change = ", ".join(f"{k}={v!r}" for k, v in changes.items())
            cases.append(InvalidSpecCase(cls, {**base, **changes}, field, change))
    return cases


def invalid_spec_kwargs(spec_class: type[ModuleSpec]) -> st.SearchStrategy[InvalidSpecCase]:
    """Hypothesis strategy: a random valid ``spec_class`` spec with one invalid change."""
    return specs_for(spec_class).flatmap(lambda spec: st.sampled_from(invalid_cases(spec)))
