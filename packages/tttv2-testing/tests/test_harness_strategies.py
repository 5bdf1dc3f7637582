"""check_component(strategies=...) checks a block under every registered strategy its
implementations cover and names the (strategy, mode) pair that is wrong; shown with a toy
block whose continuous-batch implementation is broken."""

from dataclasses import dataclass

import pytest
import torch
from hypothesis import strategies as st

from tttv2.core import (
    BaseModule,
    ExecutionMode,
    PrefillDecodeStrategy,
    StrategyRegistry,
    register_implementation,
)
from tttv2.core.specs import ModuleSpec
from tttv2.testing.harness import (
    check_component,
    check_component_property,
    register_component,
    unregister_component,
)


@dataclass(frozen=True)
class ToyBiasSpec(ModuleSpec):
    """``y = x + b`` over ``dim`` channels, implemented for prefill, decode, unified and
    continuous batching."""

    kind = "tttv2_testing_toy_bias"
    dim: int

    def validate(self) -> None:
        self._positive("dim")


@dataclass(frozen=True)
class ToyBiasTwoModeSpec(ModuleSpec):
    """The same block, implemented for prefill and decode only (not a subclass: the
    implementation registry would find the parent's other modes through the MRO)."""

    kind = "tttv2_testing_toy_bias_two_mode"
    dim: int

    def validate(self) -> None:
        self._positive("dim")


class ToyBias(BaseModule):
    def __init__(self, spec, device=None, execution_strategy=None):
        super().__init__(spec, device, execution_strategy)
        self.bias = torch.nn.Parameter(torch.zeros(spec.dim))


class AddBias:
    def __init__(self, spec, device):
        self.spec = spec

    def forward(self, module, x):
        return x + module.bias


class SubtractsBias(AddBias):
    """The deliberately broken implementation: a sign error."""

    def forward(self, module, x):
        return x - module.bias


for _mode in ("prefill", "decode", "unified"):
    register_implementation(ToyBiasSpec, _mode, AddBias)
register_implementation(ToyBiasSpec, "continuous_batch", SubtractsBias)
for _mode in ("prefill", "decode"):
    register_implementation(ToyBiasTwoModeSpec, _mode, AddBias)
register_implementation(ToyBiasTwoModeSpec, "decode", SubtractsBias, variant="sign_bug")


def run_toy(block, x, mode):
    if mode is ExecutionMode.DECODE:
        return torch.cat([block.run_in_mode(mode, x[t : t + 1]) for t in range(x.shape[0])])
    return block.run_in_mode(mode, x)


@pytest.fixture
def toy():
    component = register_component(
        "toy_bias",
        make_spec_strategy=lambda: st.builds(ToyBiasSpec, dim=st.integers(1, 8)),
        build_block=lambda spec, device, strategy: ToyBias(spec, device, strategy),
        build_reference_inputs=lambda spec, gen, device, dtype: torch.randn(
            5, spec.dim, generator=gen
        ).to(device, dtype),
        run_block=run_toy,
        run_reference=lambda block, x: x.double() + block.bias.double(),
    )
    yield component
    unregister_component("toy_bias")


BUILT_IN = {
    "continuous_batching",
    "dynamic",
    "multi_mode",
    "prefill_decode",
    "unified",
}  # tttv2.core's own


def pairs(report):
    return {(r.strategy, r.mode.value) for r in report.results}


def test_all_strategies_are_checked_and_the_broken_pair_is_named(toy):
    report = check_component("toy_bias", ToyBiasSpec(dim=6), strategies="all")
    assert not report.passed
    checked = {name for name, _ in pairs(report)}
    assert BUILT_IN <= checked and checked | set(dict(report.skipped_strategies)) == set(
        StrategyRegistry.names()
    )
    assert {
        ("prefill_decode", "prefill"),
        ("prefill_decode", "decode"),
        ("unified", "unified"),
        ("continuous_batching", "continuous_batch"),
        ("multi_mode", "long_context"),
    } <= pairs(report)
    assert [(r.strategy, r.mode_name) for r in report.failures()] == [
        ("continuous_batching", "continuous_batch")
    ]
    assert "[continuous_batching:continuous_batch] FAILED" in report.message
    assert (
        "[continuous_batching:prefill] ok" in report.message
        and "[unified:unified] ok" in report.message
    )
    assert not report.result("continuous_batch", strategy="continuous_batching").passed
    with pytest.raises(KeyError, match="pass strategy="):
        report.result("prefill")  # checked under several strategies
    with pytest.raises(AssertionError, match="continuous_batching:continuous_batch"):
        report.raise_if_failed()


def test_strategies_the_implementations_do_not_cover_are_skipped_and_listed(toy):
    report = check_component("toy_bias", ToyBiasTwoModeSpec(dim=4), strategies="all")
    assert report.passed, report.message
    skipped = dict(report.skipped_strategies)
    assert set(skipped) & BUILT_IN == {"continuous_batching", "unified"}
    assert "continuous_batch" in skipped["continuous_batching"] and "unified" in skipped["unified"]
    assert "[unified] skipped" in report.message
    assert {name for name, _ in pairs(report)} & BUILT_IN == {
        "dynamic",
        "multi_mode",
        "prefill_decode",
    }


def test_a_listed_strategy_must_build_the_block(toy):
    broken = PrefillDecodeStrategy(variants={"decode": "sign_bug"})
    report = check_component(
        "toy_bias", ToyBiasTwoModeSpec(dim=4), strategies=["multi_mode", broken]
    )
    assert [(r.strategy, r.mode_name) for r in report.failures()] == [("prefill_decode", "decode")]
    assert report.strategy == "multi_mode, prefill_decode"
    with pytest.raises(ValueError, match="strategy 'unified' cannot build this block"):
        check_component(
            "toy_bias", ToyBiasTwoModeSpec(dim=4), strategies=["prefill_decode", "unified"]
        )


def test_modes_restrict_each_strategy(toy):
    report = check_component("toy_bias", ToyBiasSpec(dim=3), strategies="all", modes=["decode"])
    assert report.passed, report.message  # the broken continuous-batch mode is not checked
    assert {(name, "decode") for name in BUILT_IN} <= pairs(report)  # unified too, via UNIFIED
    assert {mode for _, mode in pairs(report)} == {"decode"}
    report = check_component(
        "toy_bias", ToyBiasSpec(dim=3), strategies="all", modes=["continuous_batch"]
    )
    assert pairs(report) == {("continuous_batching", "continuous_batch")} and not report.passed
    skipped = dict(report.skipped_strategies)
    assert skipped.keys() >= BUILT_IN - {"continuous_batching"}
    assert all(
        "supports none of the requested modes" in skipped[name]
        for name in BUILT_IN - {"continuous_batching"}
    )


def test_default_checks_the_one_strategy_untagged(toy):
    report = check_component("toy_bias", ToyBiasSpec(dim=3))
    assert report.passed and [r.strategy for r in report.results] == [None, None]
    assert "[decode] ok" in report.message


def test_property_check_over_all_strategies_finds_the_broken_pair(toy):
    with pytest.raises(AssertionError, match=r"\[continuous_batching:continuous_batch\] FAILED"):
        check_component_property("toy_bias", max_examples=3, strategies="all")


def test_bad_strategies_arguments_are_refused(toy):
    with pytest.raises(
        ValueError, match=r"strategies='unified' is invalid: expected 'all' or a list"
    ):
        check_component("toy_bias", ToyBiasSpec(dim=2), strategies="unified")
    with pytest.raises(ValueError, match="execution_strategy=.* and strategies=.* were both given"):
        check_component(
            "toy_bias", ToyBiasSpec(dim=2), strategies="all", execution_strategy="unified"
        )
    with pytest.raises(ValueError, match="non-empty list"):
        check_component("toy_bias", ToyBiasSpec(dim=2), strategies=[])
    plain = register_component(
        "toy_plain",
        lambda: st.just(ToyBiasSpec(dim=2)),
        lambda spec, device, strategy: torch.nn.Identity(),
        lambda spec, gen, device, dtype: torch.randn(3, 2, generator=gen),
        lambda block, x, mode: block(x),
        lambda block, x: x,
    )
    try:
        with pytest.raises(ValueError, match="build_block to build the block with the strategy"):
            check_component(plain, ToyBiasSpec(dim=2), strategies="all")
    finally:
        unregister_component("toy_plain")
