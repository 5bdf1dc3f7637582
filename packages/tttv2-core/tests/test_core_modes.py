"""ExecutionMode: the built-in modes, adding one from outside, identity through pickle/copy."""

from __future__ import annotations

import copy
import pickle

import pytest

from tttv2.core import ExecutionMode, UnknownNameError

BUILT_IN = ("prefill", "decode", "unified", "long_context", "speculative", "continuous_batch")


def test_built_in_modes() -> None:
    for value in BUILT_IN:
        mode = getattr(ExecutionMode, value.upper())
        assert mode.value == value and mode.name == value.upper()
        assert ExecutionMode(value) is mode and ExecutionMode(value.upper()) is mode
        assert ExecutionMode(mode) is mode
        assert ExecutionMode[value.upper()] is mode
        assert repr(mode) == f"ExecutionMode.{value.upper()}" and str(mode) == value
    assert tuple(m.value for m in ExecutionMode.all())[:6] == BUILT_IN
    assert list(ExecutionMode)[:6] == list(ExecutionMode.all())[:6]  # iterates like an Enum
    assert len(ExecutionMode) == len(ExecutionMode.all())
    assert ExecutionMode.PREFILL in ExecutionMode and "prefill" not in ExecutionMode
    assert ExecutionMode.PREFILL != ExecutionMode.DECODE
    assert {ExecutionMode.PREFILL: 1}[ExecutionMode("prefill")] == 1


def test_third_party_mode_without_editing_the_library() -> None:
    mode = ExecutionMode.register("core_test_beam_verify")
    assert ExecutionMode.CORE_TEST_BEAM_VERIFY is mode is ExecutionMode("core_test_beam_verify")
    assert ExecutionMode.register("CORE_TEST_BEAM_VERIFY") is mode  # idempotent
    assert mode in ExecutionMode.all() and mode in list(ExecutionMode)
    for bad in ("two words", "dash-ed", "", 3):
        with pytest.raises(ValueError):
            ExecutionMode.register(bad)  # type: ignore[arg-type]


def test_unknown_mode_lists_the_registered_ones() -> None:
    with pytest.raises(UnknownNameError) as info:
        ExecutionMode("prefil")
    assert (
        "prefil" in str(info.value) and "prefill" in str(info.value) and "decode" in str(info.value)
    )
    with pytest.raises(LookupError):
        ExecutionMode["PREFIL"]


def test_modes_are_immutable_singletons_under_copy_and_pickle() -> None:
    custom = ExecutionMode.register("core_test_pickled")
    for mode in (*ExecutionMode.all()[:6], custom):
        assert copy.copy(mode) is mode and copy.deepcopy(mode) is mode
        assert copy.deepcopy({"m": [mode]})["m"][0] is mode
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            data = pickle.dumps(mode, protocol=protocol)
            assert mode.value.encode() in data  # by value, so another process maps it too
            assert pickle.loads(data) is mode
    with pytest.raises(AttributeError):
        ExecutionMode.PREFILL.value = "decode"  # type: ignore[misc]
    assert ExecutionMode.PREFILL.value == "prefill"
