"""The spec strategies produce valid, small, varied specs; every invalid case is rejected
with a SpecError naming the expected field."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tttv2.core.errors import SpecError
from tttv2.core.specs import (
    ROPE_SCALINGS,
    AttentionSpec,
    DecoderLayerSpec,
    ModelSpec,
    ModuleSpec,
    MoESpec,
    RopeSpec,
)
from tttv2.testing import spec_strategies as ss
from tttv2.testing.spec_strategies.invalid import VALID_SPECS

FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SPEC_CLASSES = sorted(VALID_SPECS, key=lambda c: c.__name__)


@pytest.mark.parametrize("spec_class", SPEC_CLASSES, ids=lambda c: c.__name__)
def test_specs_are_valid_small_and_round_trip(spec_class):
    @FAST
    @given(ss.specs_for(spec_class))
    def check(spec):
        assert type(spec) is spec_class
        assert ModuleSpec.from_json(spec.to_json()) == spec
        assert spec.replace() == spec  # validates again
        assert getattr(spec, "hidden_dim", 0) <= 128

    check()


@pytest.mark.parametrize("spec_class", SPEC_CLASSES, ids=lambda c: c.__name__)
def test_invalid_cases_raise_naming_the_field(spec_class):
    @FAST
    @given(ss.invalid_spec_kwargs(spec_class))
    def check(case):
        with pytest.raises(SpecError) as err:
            case.build()
        assert err.value.field == case.field, f"{case}: got {err.value}"
        assert err.value.spec == spec_class.__name__

    check()


@pytest.mark.parametrize("scaling", ROPE_SCALINGS)
def test_rope_specs_cover_every_scaling(scaling):
    @FAST
    @given(ss.rope_specs(scalings=(scaling,)))
    def check(spec):
        assert spec.scaling == scaling
        assert spec.rotary_dim <= spec.head_dim and spec.rotary_dim % 2 == 0
        if scaling == "llama3":
            assert spec.high_freq_factor > spec.low_freq_factor
        if scaling == "longrope":
            assert len(spec.short_factor) == len(spec.long_factor) == spec.rotary_dim // 2

    check()


@FAST
@given(st.data())
def test_rope_specs_reject_unknown_scalings(data):
    with pytest.raises(ValueError, match="scalings"):
        data.draw(ss.rope_specs(scalings=("ntk",)))


@FAST
@given(st.data())
def test_fixed_dimensions_are_respected(data):
    attn = data.draw(ss.attention_specs(hidden_dim=48, max_seq_len=64, rope=True))
    assert isinstance(attn, AttentionSpec) and attn.hidden_dim == 48 and attn.max_seq_len == 64
    assert isinstance(attn.rope, RopeSpec) and attn.rope.head_dim == attn.head_dim
    layer = data.draw(ss.decoder_layer_specs(hidden_dim=32, moe=True, parallel=False))
    assert (
        isinstance(layer, DecoderLayerSpec)
        and isinstance(layer.ffn, MoESpec)
        and layer.hidden_dim == 32
    )
    model = data.draw(ss.model_specs(num_layers=2, hidden_dim=16, vocab_size=50))
    assert isinstance(model, ModelSpec) and model.num_layers == 2 and model.vocab_size == 50


def test_strategies_reach_the_interesting_variants():
    """Across a batch of examples every feature flag takes both values (so property tests
    exercise GQA, rope, sliding windows, biases, sandwich and parallel layers, MoE)."""
    seen: dict[str, set] = {}

    @settings(
        max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(ss.decoder_layer_specs())
    def collect(layer):
        a = layer.attention
        for key, value in {
            "gqa": a.num_kv_heads < a.num_heads,
            "rope": a.rope is not None,
            "window": a.sliding_window is not None,
            "qk_norm": a.qk_norm,
            "bias": a.qkv_bias,
            "moe": isinstance(layer.ffn, MoESpec),
            "parallel": layer.parallel,
            "sandwich": layer.post_attn_norm is not None,
        }.items():
            seen.setdefault(key, set()).add(value)

    collect()
    assert {k for k, v in seen.items() if v != {True, False}} == set()


def test_invalid_cases_enumerates_single_changes():
    spec = AttentionSpec(hidden_dim=32, num_heads=4, num_kv_heads=2)
    cases = ss.invalid_cases(spec)
    assert {c.field for c in cases} >= {
        "hidden_dim",
        "num_heads",
        "num_kv_heads",
        "sliding_window",
        "rope",
    }
    for case in cases:
        changed = {
            k for k, v in case.kwargs.items() if v is not getattr(spec, k) and v != getattr(spec, k)
        }
        assert len(changed) <= 2, case  # one change (two for the bias+tied style cases)
    with pytest.raises(ValueError, match="no invalid cases"):
        ss.invalid_cases(object())  # type: ignore[arg-type]
