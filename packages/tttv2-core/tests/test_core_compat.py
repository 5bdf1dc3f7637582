"""LegacyModeCall: the seed's migration path, ``module(x, mode="prefill")``, on a test module
built the way tttv2-blocks builds BackwardCompatibleAttention."""

from __future__ import annotations

import warnings

import pytest
import torch
from core_toys import ToyLeaf, ToySpec, assert_close, reference

from tttv2.core import (
    ExecutionMode,
    LegacyModeCall,
    ModeNotSupportedError,
    PrefillDecodeStrategy,
    UnknownNameError,
)


def legacy_class():
    """A fresh class per test: the shim warns once per class."""

    class BackwardCompatibleToy(LegacyModeCall, ToyLeaf):
        def __init__(self, dim: int, device: str | None = None) -> None:  # the old constructor
            super().__init__(ToySpec(dim=dim), device, PrefillDecodeStrategy())

    return BackwardCompatibleToy


def test_old_call_style_switches_mode_and_computes_the_same() -> None:
    module = legacy_class()(dim=8)
    x = torch.randn(3, 8)
    with pytest.warns(DeprecationWarning, match="legacy call style"):
        out = module(x, mode="prefill")
    assert_close(out, reference(module, x))
    assert (module.last_ran, module.current_mode) == ("prefill", ExecutionMode.PREFILL)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once already: silent now
        assert_close(module(x[:1], mode="decode"), reference(module, x[:1]))
        assert (module.last_ran, module.current_mode) == ("decode", ExecutionMode.DECODE)
        module(x, mode=ExecutionMode.PREFILL)
        assert module.last_ran == "prefill"


def test_warning_points_at_the_caller_once_per_class() -> None:
    cls = legacy_class()
    sub = type("SubToy", (cls,), {})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cls(4)(torch.ones(1, 4), mode="decode")
        cls(4)(torch.ones(1, 4), mode="decode")
        sub(4)(torch.ones(1, 4), mode="prefill")
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert len(deprecations) == 2
    assert all(w.filename == __file__ for w in deprecations)
    assert "set_mode()" in str(deprecations[0].message) and "decode_forward()" in str(
        deprecations[0].message
    )
    assert "SubToy" in str(deprecations[1].message)


def test_new_api_keeps_working_on_the_shim_without_warnings() -> None:
    module = legacy_class()(dim=4)
    x = torch.randn(2, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module(x)  # no mode: the current one (prefill at start)
        assert module.last_ran == "prefill"
        module.set_mode(ExecutionMode.DECODE)
        module(x)
        assert module.last_ran == "decode"
        module.prefill_forward(x)
        assert module.last_ran == "prefill"
        assert_close(module.decode_forward(x), reference(module, x))
        assert module.last_ran == "decode"


def test_old_call_style_rejects_bad_modes() -> None:
    module = legacy_class()(dim=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(UnknownNameError, match="'prefil'"):
            module(torch.ones(1, 4), mode="prefil")
        with pytest.raises(ModeNotSupportedError, match="'unified'"):
            module(torch.ones(1, 4), mode="unified")
    assert module.current_mode is ExecutionMode.PREFILL
