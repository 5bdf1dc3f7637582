"""The component harness checks a block in every mode its strategy supports and reports
the mode that is wrong; shown with a toy block whose decode implementation can be broken."""

from dataclasses import dataclass

import pytest
import torch
from hypothesis import strategies as st

from tttv2.core import BaseModule, ExecutionMode, PrefillDecodeStrategy, register_implementation
from tttv2.core.specs import ModuleSpec
from tttv2.testing.harness import (
    check_component,
    check_component_property,
    get_component,
    randomize_parameters,
    register_component,
    registered_components,
    unregister_component,
)


@dataclass(frozen=True)
class ToyScaleSpec(ModuleSpec):
    """``y = x * w`` over the last dimension (``dim`` channels)."""

    kind = "tttv2_testing_toy_scale"
    dim: int

    def validate(self) -> None:
        self._positive("dim")


class ToyScale(BaseModule):
    def __init__(self, spec, device=None, execution_strategy=None):
        super().__init__(spec, device, execution_strategy)
        self.weight = torch.nn.Parameter(torch.ones(spec.dim))


class Scale:
    def __init__(self, spec, device):
        self.spec = spec

    def forward(self, module, x):
        return x * module.weight


class ScaleForgetsWeightWhenWide(Scale):
    """Wrong only for dim > 8, so only some specs reveal it."""

    def forward(self, module, x):
        return x if self.spec.dim > 8 else x * module.weight


class ScaleOffByOne(Scale):
    def forward(self, module, x):
        return x * torch.roll(module.weight, 1)


for mode in ("prefill", "decode"):
    register_implementation(ToyScaleSpec, mode, Scale)
register_implementation(ToyScaleSpec, "decode", ScaleOffByOne, variant="off_by_one")
register_implementation(ToyScaleSpec, "decode", ScaleForgetsWeightWhenWide, variant="wide_bug")


def run_toy(block, x, mode):
    if mode is ExecutionMode.DECODE:  # one token at a time, as decode does
        return torch.cat([block.run_in_mode(mode, x[t : t + 1]) for t in range(x.shape[0])])
    return block.run_in_mode(mode, x)


@pytest.fixture
def toy():
    component = register_component(
        "toy_scale",
        make_spec_strategy=lambda: st.builds(ToyScaleSpec, dim=st.integers(1, 16)),
        build_block=lambda spec, device, strategy: ToyScale(spec, device, strategy),
        build_reference_inputs=lambda spec, gen, device, dtype: torch.randn(
            5, spec.dim, generator=gen
        ).to(device, dtype),
        run_block=run_toy,
        run_reference=lambda block, x: x.double() * block.weight.double(),
    )
    yield component
    unregister_component("toy_scale")


def test_correct_block_passes_in_every_supported_mode(toy):
    report = check_component("toy_scale", ToyScaleSpec(dim=6))
    assert report.passed, report.message
    assert [r.mode for r in report.results] == [ExecutionMode.PREFILL, ExecutionMode.DECODE]
    assert report.result("decode").close.max_abs_error < 1e-6


def test_broken_decode_is_reported_by_mode(toy):
    strategy = PrefillDecodeStrategy(variants={"decode": "off_by_one"})
    report = check_component(toy, ToyScaleSpec(dim=6), execution_strategy=strategy)
    assert not report.passed
    assert report.result("prefill").passed and not report.result("decode").passed
    assert "[decode] FAILED" in report.message and "[prefill] ok" in report.message
    with pytest.raises(AssertionError, match="decode"):
        report.raise_if_failed()


def test_property_check_finds_spec_dependent_bug(toy):
    check_component_property("toy_scale", max_examples=5)  # the correct block
    strategy = PrefillDecodeStrategy(variants={"decode": "wide_bug"})
    with pytest.raises(AssertionError, match="decode"):
        check_component_property("toy_scale", execution_strategy=strategy, max_examples=30)


def test_reduced_precision_is_judged_by_pcc_and_error_norm(toy):
    report = check_component("toy_scale", ToyScaleSpec(dim=16), dtype=torch.bfloat16)
    assert report.passed, report.message
    assert report.tolerance.name == "bf16"
    assert all(r.relative is not None and r.relative.passed for r in report.results)
    assert (
        check_component("toy_scale", ToyScaleSpec(dim=16)).result("decode").relative is None
    )  # fp32: allclose
    broken = PrefillDecodeStrategy(variants={"decode": "off_by_one"})
    assert not check_component(
        "toy_scale", ToyScaleSpec(dim=16), dtype="bf16", execution_strategy=broken
    ).passed


def test_exceptions_in_one_mode_are_reported_and_chained(toy):
    def run(block, x, mode):
        if mode is ExecutionMode.DECODE:
            raise RuntimeError("decode kernel missing")
        return block.run_in_mode(mode, x)

    register_component(
        "toy_scale",
        toy.make_spec_strategy,
        toy.build_block,
        toy.build_reference_inputs,
        run,
        toy.run_reference,
        replace=True,
    )
    report = check_component("toy_scale", ToyScaleSpec(dim=3))
    assert report.result("prefill").passed
    assert isinstance(report.result("decode").error, RuntimeError)
    with pytest.raises(AssertionError, match="decode kernel missing") as err:
        report.raise_if_failed()
    assert isinstance(err.value.__cause__, RuntimeError)


def test_plain_modules_are_checked_once(toy):
    register_component(
        "toy_linear",
        make_spec_strategy=lambda: st.builds(ToyScaleSpec, dim=st.integers(1, 8)),
        build_block=lambda spec, device, strategy: torch.nn.Linear(spec.dim, spec.dim),
        build_reference_inputs=lambda spec, gen, device, dtype: torch.randn(
            4, spec.dim, generator=gen
        ).to(device, dtype),
        run_block=lambda block, x, mode: block(x),
        run_reference=lambda block, x: x.double() @ block.weight.double().T + block.bias.double(),
    )
    try:
        report = check_component("toy_linear", ToyScaleSpec(dim=4))
        assert report.passed and [r.mode for r in report.results] == [None]
        assert "toy_linear" in registered_components()
    finally:
        unregister_component("toy_linear")


def test_registry_rejects_duplicates_and_unknown_names(toy):
    with pytest.raises(ValueError, match="already registered"):
        register_component(
            "toy_scale",
            *[
                getattr(toy, f)
                for f in (
                    "make_spec_strategy",
                    "build_block",
                    "build_reference_inputs",
                    "run_block",
                    "run_reference",
                )
            ],
        )
    with pytest.raises(LookupError, match="toy_scale"):
        get_component("no_such_block")
    with pytest.raises(ValueError, match="not supported"):
        check_component("toy_scale", ToyScaleSpec(dim=2), modes=["unified"])


def test_randomized_weights_are_seeded_and_non_trivial():
    a = randomize_parameters(torch.nn.LayerNorm(8), seed=3)
    b = randomize_parameters(torch.nn.LayerNorm(8), seed=3)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert not torch.equal(a.weight, torch.ones(8)) and not torch.equal(a.bias, torch.zeros(8))
    c = randomize_parameters(torch.nn.LayerNorm(8), seed=4)
    assert not torch.equal(a.weight, c.weight)


def test_constant_reference_is_judged_by_allclose(toy):
    """PCC is undefined against a constant reference; a tiny rounding noise must not fail
    a correct block there, and a real error must still fail it."""

    def run(block, x, mode, noise=1e-6):
        return block.run_in_mode(mode, x) + noise * torch.randn_like(x)

    zeros = lambda spec, gen, device, dtype: torch.zeros(5, spec.dim, device=device, dtype=dtype)  # noqa: E731
    register_component(
        "toy_scale",
        toy.make_spec_strategy,
        toy.build_block,
        zeros,
        run,
        toy.run_reference,
        replace=True,
    )
    report = check_component("toy_scale", ToyScaleSpec(dim=4))
    assert report.passed, report.message
    assert not report.result("prefill").pcc.passed  # reported, but not the criterion here
    register_component(
        "toy_scale",
        toy.make_spec_strategy,
        toy.build_block,
        zeros,
        lambda block, x, mode: run(block, x, mode, noise=0.1),
        toy.run_reference,
        replace=True,
    )
    assert not check_component("toy_scale", ToyScaleSpec(dim=4)).passed
