"""The implementation registry blocks fill: per (spec class, mode, variant), found through
spec subclasses, constructed as ``Factory(spec, device)``."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from tttv2.core import (
    ExecutionMode,
    ModuleSpec,
    StrategyError,
    implementations_for,
    implements,
    registered_modes,
)
from tttv2.core.implementations import build_implementation


@dataclass(frozen=True)
class GateSpec(ModuleSpec):
    kind = "core_test_gate"

    dim: int


@dataclass(frozen=True)
class WideGateSpec(GateSpec):  # a refinement: inherits GateSpec's implementations
    kind = "core_test_wide_gate"


@implements(GateSpec, ExecutionMode.PREFILL, "decode")
class GateImpl:
    def __init__(self, spec: GateSpec, device: torch.device) -> None:
        self.spec, self.device = spec, device

    def forward(self, module, x):
        return x


@implements(GateSpec, "decode", variant="graph")
class GraphGateImpl(GateImpl):
    pass


def test_implements_registers_each_mode_and_returns_the_class() -> None:
    assert GateImpl.__name__ == "GateImpl"  # the decorator hands the class back
    assert implementations_for(GateSpec, "prefill") == {"default": GateImpl}
    assert implementations_for(GateSpec, ExecutionMode.DECODE) == {
        "default": GateImpl,
        "graph": GraphGateImpl,
    }
    assert implementations_for(GateSpec, "unified") == {}
    assert registered_modes(GateSpec) == (ExecutionMode.PREFILL, ExecutionMode.DECODE)


def test_spec_subclasses_find_their_base_implementations() -> None:
    assert implementations_for(WideGateSpec, "decode")["graph"] is GraphGateImpl
    impl = build_implementation(WideGateSpec(3), ExecutionMode.DECODE, torch.device("cpu"), "graph")
    assert (
        type(impl) is GraphGateImpl
        and impl.spec == WideGateSpec(3)
        and impl.device == torch.device("cpu")
    )


def test_build_implementation_explains_what_is_missing() -> None:
    with pytest.raises(
        StrategyError, match=r"GateSpec for mode 'speculative'.*registered modes: prefill, decode"
    ):
        build_implementation(GateSpec(3), ExecutionMode.SPECULATIVE, "cpu")
    with pytest.raises(StrategyError, match="no variant 'paged'; registered: default, graph"):
        build_implementation(GateSpec(3), ExecutionMode.DECODE, "cpu", "paged")
