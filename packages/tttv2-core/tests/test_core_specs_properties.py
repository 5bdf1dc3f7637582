"""Property tests over every spec kind: every valid spec constructs and round-trips through
plain dicts and JSON; every invalid field value raises SpecError naming that field."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle

import pytest
from core_spec_strategies import INVALID, VALID, valid_specs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tttv2.core import AttentionSpec, ModuleSpec, RopeSpec, SpecError
from tttv2.core.specs import spec_kinds

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _is_plain_json(value: object) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_plain_json(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def test_every_spec_kind_has_strategies() -> None:
    kinds = {cls.kind for cls in VALID}
    assert kinds <= set(spec_kinds())
    assert kinds == {
        "attention",
        "feed_forward",
        "moe",
        "norm",
        "embedding",
        "rope",
        "kv_cache",
        "lm_head",
        "decoder_layer",
        "model",
    }
    assert set(INVALID) == set(VALID)
    for cls, fields in INVALID.items():  # every field has invalid values to try
        assert set(fields) == {f.name for f in dataclasses.fields(cls)}, cls.__name__


@SETTINGS
@given(spec=valid_specs())
def test_valid_spec_round_trips(spec: ModuleSpec) -> None:
    data = spec.to_dict()
    assert data["kind"] == spec.kind
    assert _is_plain_json(data)
    assert ModuleSpec.from_dict(data) == spec
    assert type(spec).from_dict(data) == spec
    assert ModuleSpec.from_json(spec.to_json()) == spec
    assert ModuleSpec.from_dict(json.loads(json.dumps(data))) == spec
    assert data == spec.to_dict()  # from_dict did not mutate its input
    again = ModuleSpec.from_dict(data)
    assert hash(again) == hash(spec)
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert copy.deepcopy(spec) == spec
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.kind_of_field = 1  # type: ignore[attr-defined]


@SETTINGS
@given(spec=valid_specs())
def test_derived_fields_are_concrete(spec: ModuleSpec) -> None:
    def walk(s: object) -> None:
        if isinstance(s, AttentionSpec):
            assert isinstance(s.num_kv_heads, int) and isinstance(s.head_dim, int)
            assert s.num_heads % s.num_kv_heads == 0
            assert s.group_size * s.num_kv_heads == s.num_heads
        if isinstance(s, RopeSpec):
            assert (
                isinstance(s.rotary_dim, int)
                and s.rotary_dim % 2 == 0
                and s.rotary_dim <= s.head_dim
            )
        if isinstance(s, ModuleSpec):
            for f in dataclasses.fields(s):  # type: ignore[arg-type]
                walk(getattr(s, f.name))
        if isinstance(s, tuple):
            for x in s:
                walk(x)

    walk(spec)


@SETTINGS
@given(data=st.data())
def test_invalid_field_value_names_the_field(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(sorted(INVALID, key=lambda c: c.__name__)), label="spec class")
    field = data.draw(st.sampled_from(sorted(INVALID[cls])), label="field")
    base = data.draw(VALID[cls], label="valid spec")
    bad = data.draw(INVALID[cls][field], label="bad value")
    with pytest.raises(SpecError) as info:
        dataclasses.replace(base, **{field: bad})
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.spec, err.field) == (cls.__name__, field), str(err)
    message = str(err)
    assert message.startswith(f"{cls.__name__}.{field}="), message
    assert "expected" in message and err.expected  # says what would be valid


@SETTINGS
@given(data=st.data())
def test_invalid_field_value_from_plain_data_names_the_field(data: st.DataObject) -> None:
    """The same through from_dict, as a JSON/TOML file would supply it."""
    cls = data.draw(st.sampled_from(sorted(INVALID, key=lambda c: c.__name__)), label="spec class")
    field = data.draw(st.sampled_from(sorted(INVALID[cls])), label="field")
    base = data.draw(VALID[cls], label="valid spec")
    bad = data.draw(INVALID[cls][field].filter(_is_plain_json), label="bad value")
    with pytest.raises(SpecError) as info:
        ModuleSpec.from_dict({**base.to_dict(), field: bad})
    err = info.value
    assert err.spec == cls.__name__, str(err)
    # a nested table ({}) is reported at its path, e.g. "rope.head_dim"
    assert err.field == field or (bad == {} and err.field.startswith(field + ".")), str(err)
