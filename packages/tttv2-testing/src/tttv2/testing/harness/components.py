"""Component correctness harness: one driver for every block kind.

A block family registers, once, how to make it and how to check it::

    register_component(
        "norm",
        make_spec_strategy=norm_specs,                      # hypothesis strategy of specs
        build_block=lambda spec, device, strategy: make_norm(spec).to(device),
        build_reference_inputs=lambda spec, gen, device, dtype: torch.randn(
            5, spec.dim, generator=gen).to(device, dtype),
        run_block=lambda block, x, mode: block(x),
        run_reference=lambda block, x: reference_norm(x, block.state_dict(), block.spec),
    )

and :func:`check_component` then builds the block with seeded random weights, runs it in
**every execution mode its strategy supports** (``module.supported_modes()``; plain
``nn.Module`` blocks run once, mode ``None``) and compares each result with the
reference, which is computed from the *block's own* parameters. ``run_block(block,
inputs, mode)`` drives one mode (e.g. for DECODE: prefill all but the last token, then
decode it) and returns a tensor comparable with the reference output.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tttv2.core import BaseModule, ExecutionMode, ExecutionStrategy, UnknownNameError
from tttv2.core.specs import ModuleSpec
from tttv2.testing.harness.weights import randomize_parameters
from tttv2.testing.metrics import CloseReport, PCCReport, compare_close, compare_pcc
from tttv2.testing.metrics.report import ReportMixin
from tttv2.testing.tolerances import Tolerance, as_dtype, tolerance_for

Strategy = ExecutionStrategy | str | None


@dataclass(frozen=True)
class Component:
    """How to build, drive and check one block kind (see the module docstring)."""

    kind: str
    make_spec_strategy: Callable[[], st.SearchStrategy[ModuleSpec]]
    build_block: Callable[[ModuleSpec, torch.device, Strategy], torch.nn.Module]
    build_reference_inputs: Callable[[ModuleSpec, torch.Generator, torch.device, torch.dtype], Any]
    run_block: Callable[[torch.nn.Module, Any, ExecutionMode | None], torch.Tensor]
    run_reference: Callable[[torch.nn.Module, Any], torch.Tensor]
    randomize_weights: bool = True


_COMPONENTS: dict[str, Component] = {}


def register_component(
    kind: str,
    make_spec_strategy: Callable[[], st.SearchStrategy[ModuleSpec]],
    build_block: Callable[[ModuleSpec, torch.device, Strategy], torch.nn.Module],
    build_reference_inputs: Callable[[ModuleSpec, torch.Generator, torch.device, torch.dtype], Any],
    run_block: Callable[[torch.nn.Module, Any, ExecutionMode | None], torch.Tensor],
    run_reference: Callable[[torch.nn.Module, Any], torch.Tensor],
    *,
    randomize_weights: bool = True,
    replace: bool = False,
) -> Component:
    """Register a block kind with the harness. Registering a kind twice is an error
    unless ``replace=True`` (two test modules silently overriding each other would
    test the wrong thing)."""
    if kind in _COMPONENTS and not replace:
        raise ValueError(f"component {kind!r} is already registered; pass replace=True to override it")
    component = Component(
        kind, make_spec_strategy, build_block, build_reference_inputs, run_block, run_reference, randomize_weights
    )
    _COMPONENTS[kind] = component
    return component


def unregister_component(kind: str) -> None:
    _COMPONENTS.pop(kind, None)


def get_component(kind: str) -> Component:
    try:
        return _COMPONENTS[kind]
    except KeyError:
        raise UnknownNameError("component", kind, _COMPONENTS) from None


def registered_components() -> tuple[str, ...]:
    return tuple(sorted(_COMPONENTS))


@dataclass(frozen=True)
class ModeResult:
    """The check of one execution mode (``mode`` is None for plain modules)."""

    mode: ExecutionMode | None
    passed: bool
    close: CloseReport | None
    pcc: PCCReport | None
    error: BaseException | None = None

    @property
    def mode_name(self) -> str:
        return self.mode.value if self.mode is not None else "forward"

    def describe(self) -> str:
        if self.error is not None:
            text = "".join(traceback.format_exception_only(type(self.error), self.error)).strip()
            return f"[{self.mode_name}] raised {text}"
        assert self.close is not None and self.pcc is not None
        status = "ok" if self.passed else "FAILED"
        return f"[{self.mode_name}] {status}: {self.close.message}; {self.pcc.message}"


@dataclass(frozen=True, kw_only=True)
class ComponentReport(ReportMixin):
    kind: str
    spec: ModuleSpec
    dtype: torch.dtype
    device: torch.device
    strategy: str
    tolerance: Tolerance
    results: tuple[ModeResult, ...]
    passed: bool
    message: str

    def raise_if_failed(self) -> None:
        if not self.passed:
            errors = [r.error for r in self.results if r.error is not None]
            raise AssertionError(self.message) from (errors[0] if errors else None)

    def result(self, mode: ExecutionMode | str | None) -> ModeResult:
        wanted = ExecutionMode(mode) if mode is not None else None
        for r in self.results:
            if r.mode is wanted:
                return r
        raise KeyError(f"mode {mode!r} was not checked; checked: {[r.mode_name for r in self.results]}")


def modes_of(block: torch.nn.Module) -> tuple[ExecutionMode | None, ...]:
    """Every mode ``block`` supports, or ``(None,)`` for a plain ``nn.Module``."""
    if isinstance(block, BaseModule):
        return block.supported_modes()
    return (None,)


def check_component(
    component: str | Component,
    spec: ModuleSpec,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | str = torch.float32,
    execution_strategy: Strategy = None,
    seed: int = 0,
    tolerance: Tolerance | None = None,
    modes: Sequence[ExecutionMode | str] | None = None,
) -> ComponentReport:
    """Check ``spec``'s block against its reference in every supported mode.

    ``modes`` restricts the check to some of them (each must be supported). In fp32/fp64
    a mode passes when it is allclose to the reference (the dtype's preset) and its PCC
    reaches the preset; in bf16/fp16 the PCC decides and allclose is reported only. Where
    the reference is constant (PCC undefined), allclose decides in every dtype."""
    comp = get_component(component) if isinstance(component, str) else component
    device, dtype = torch.device(device), as_dtype(dtype)
    tol = tolerance or tolerance_for(dtype)

    block = comp.build_block(spec, device, execution_strategy)
    if comp.randomize_weights:
        randomize_parameters(block, seed)
    block = block.to(device=device, dtype=dtype).eval()
    available = modes_of(block)
    if modes is None:
        checked = available
    else:
        checked = tuple(ExecutionMode(m) for m in modes)
        missing = [m.value for m in checked if m not in available]
        if missing:
            have = [m.value if m is not None else "forward" for m in available]
            raise ValueError(f"{comp.kind}: modes {missing} are not supported by this block (supported: {have})")
    if not checked:
        raise ValueError(f"{comp.kind}: the block supports no execution mode; nothing would be checked")

    gen = torch.Generator().manual_seed(seed)
    inputs = comp.build_reference_inputs(spec, gen, device, dtype)
    with torch.no_grad():
        expected = comp.run_reference(block, inputs)
        results = [_check_mode(comp, block, inputs, mode, expected, dtype, tol) for mode in checked]

    strategy = getattr(getattr(block, "execution_strategy", None), "name", None) or "-"
    passed = all(r.passed for r in results)
    head = (
        f"{comp.kind} ({dtype}, {device}, strategy {strategy}) "
        f"{'passed' if passed else 'FAILED'} in {sum(r.passed for r in results)}/{len(results)} mode(s)"
    )
    lines = [head, f"spec: {spec!r}", *(r.describe() for r in results)]
    return ComponentReport(
        kind=comp.kind, spec=spec, dtype=dtype, device=device, strategy=strategy, tolerance=tol,
        results=tuple(results), passed=passed, message="\n".join(lines),
    )


def _check_mode(
    comp: Component,
    block: torch.nn.Module,
    inputs: Any,
    mode: ExecutionMode | None,
    expected: torch.Tensor,
    dtype: torch.dtype,
    tol: Tolerance,
) -> ModeResult:
    try:
        actual = comp.run_block(block, inputs, mode)
    except Exception as exc:  # reported per mode, so one broken mode does not hide the others
        return ModeResult(mode, False, None, None, exc)
    label = f"{comp.kind}[{mode.value if mode is not None else 'forward'}]"
    close = compare_close(actual, expected, dtype, atol=tol.atol, rtol=tol.rtol, label=label)
    corr = compare_pcc(actual, expected, tol.pcc, label=label)
    if _is_constant(expected):  # e.g. LayerNorm over one channel: PCC is undefined there
        passed = close.passed
    else:
        passed = corr.passed and (close.passed or tol.prefers_pcc)
    return ModeResult(mode, passed, close, corr)


def _is_constant(t: torch.Tensor) -> bool:
    t = t.detach()
    return t.numel() > 0 and bool(torch.isfinite(t).all()) and bool(t.min() == t.max())


def check_component_property(
    component: str | Component,
    *,
    max_examples: int = 10,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | str = torch.float32,
    execution_strategy: Strategy = None,
    seed: int = 0,
    specs: st.SearchStrategy[ModuleSpec] | None = None,
) -> None:
    """Run :func:`check_component` over ``max_examples`` random valid specs (hypothesis
    shrinks a failure to a minimal spec); raises ``AssertionError`` on the first failure."""
    comp = get_component(component) if isinstance(component, str) else component

    @settings(max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(spec=specs if specs is not None else comp.make_spec_strategy())
    def run(spec: ModuleSpec) -> None:
        check_component(
            comp, spec, device=device, dtype=dtype, execution_strategy=execution_strategy, seed=seed
        ).raise_if_failed()

    run()
