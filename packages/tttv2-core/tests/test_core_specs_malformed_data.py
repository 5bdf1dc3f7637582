"""Malformed plain data (a hand-written JSON/TOML spec gone wrong) never escapes
``ModuleSpec.from_dict`` as a raw TypeError/AttributeError: it is a SpecError naming the
path, or an UnknownNameError for a kind nobody registered."""

from __future__ import annotations

from typing import Any

import pytest
from core_spec_strategies import valid_specs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tttv2.core import ModuleSpec, SpecError, UnknownNameError
from tttv2.core.specs import spec_kinds

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 300),
    st.floats(allow_nan=True),
    st.text(max_size=3),
    st.sampled_from(spec_kinds()),
)
keys = st.one_of(
    st.text(max_size=4), st.integers(-1, 3), st.just("kind"), st.tuples(st.integers(0, 1))
)
garbage = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=6,
)


def containers(data: Any) -> list[Any]:
    """Every dict and list inside ``data``, itself included."""
    out = [data] if isinstance(data, (dict, list)) else []
    children = data.values() if isinstance(data, dict) else data if isinstance(data, list) else ()
    for child in children:
        out += containers(child)
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=valid_specs(), data=st.data())
def test_corrupted_plain_data_raises_spec_errors_only(
    spec: ModuleSpec, data: st.DataObject
) -> None:
    plain = spec.to_dict()
    target = data.draw(st.sampled_from(containers(plain)), label="container")
    if isinstance(target, dict) and data.draw(st.booleans(), label="add a key"):
        target[data.draw(keys, label="key")] = data.draw(garbage, label="value")
    else:
        slot = data.draw(
            st.sampled_from(list(target) if isinstance(target, dict) else range(len(target))),
            label="slot",
        )
        target[slot] = data.draw(garbage, label="value")
    try:
        ModuleSpec.from_dict(plain)
    except SpecError as err:
        assert isinstance(err.field, str) and str(err).startswith(f"{err.spec}.{err.field}=")
    except UnknownNameError:
        pass


@pytest.mark.parametrize("kind", [[1], {"a": 1}, 3, ("norm",)])
def test_a_kind_that_is_not_a_name(kind: object) -> None:
    with pytest.raises(SpecError) as info:
        ModuleSpec.from_dict({"kind": kind, "dim": 8})
    assert (info.value.field, info.value.value) == ("kind", kind)
    assert "'norm'" in info.value.expected  # lists the registered kinds


def test_keys_that_are_not_names() -> None:
    with pytest.raises(SpecError) as info:
        ModuleSpec.from_dict({"kind": "norm", "dim": 8, 3: 1})
    assert str(info.value).startswith("NormSpec.3=1 is invalid: expected one of bias, dim")
    with pytest.raises(SpecError) as info:  # mixed key types cannot be sorted together
        ModuleSpec.from_dict({"kind": "norm", "dim": 8, 3: 1, "hidden": 2, (0,): 3})
    assert info.value.field in ("3", "hidden", "(0,)")


def test_malformed_nested_data_names_the_path() -> None:
    layer = {
        "attention": {"hidden_dim": 64, "num_heads": 4, "rope": {"kind": ["rope"], "head_dim": 16}},
        "ffn": {"kind": "feed_forward", "hidden_dim": 64, "intermediate_dim": 128},
        "attn_norm": {"dim": 64},
        "ffn_norm": {"dim": 64},
    }
    with pytest.raises(SpecError) as info:
        ModuleSpec.from_dict({"kind": "decoder_layer", **layer})
    assert info.value.field == "attention.rope.kind", str(info.value)
    layer["attention"]["rope"] = {"head_dim": 16, 7: "x"}
    with pytest.raises(SpecError) as info:
        ModuleSpec.from_dict({"kind": "decoder_layer", **layer})
    assert str(info.value).startswith("DecoderLayerSpec.attention.rope.7='x' is invalid")
