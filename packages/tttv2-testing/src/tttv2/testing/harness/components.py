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
**every execution mode of the strategy it is built with** (``module.supported_modes()``;
plain ``nn.Module`` blocks run once, mode ``None``) and compares each result with the
reference, which is computed from the *block's own* parameters. ``run_block(block,
inputs, mode)`` drives one mode (e.g. for DECODE: prefill all but the last token, then
decode it) and returns a tensor comparable with the reference output.

With ``strategies="all"`` (or a list of strategy names / instances) the block is built
once per strategy and every (strategy, mode) pair is checked: ``"all"`` takes every
strategy in :class:`tttv2.core.StrategyRegistry` whose modes the block's registered
implementations cover and lists the others, with the reason, as skipped.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tttv2.core import BaseModule, ExecutionMode, ExecutionStrategy, StrategyError, UnknownNameError
from tttv2.core.specs import ModuleSpec
from tttv2.testing.harness.strategies import (
    StrategiesOption,
    StrategyCandidates,
    strategy_candidates,
)
from tttv2.testing.harness.weights import randomize_parameters
from tttv2.testing.metrics import (
    CloseReport,
    PCCReport,
    RelativeErrorReport,
    compare_close,
    compare_pcc,
    compare_relative_error,
)
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
        raise ValueError(
            f"component {kind!r} is already registered; pass replace=True to override it"
        )
    component = Component(
        kind,
        make_spec_strategy,
        build_block,
        build_reference_inputs,
        run_block,
        run_reference,
        randomize_weights,
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
    """The check of one execution mode (``mode`` is None for plain modules).

    ``relative`` is the norm-wise magnitude check, computed in reduced precision (where it
    decides together with the PCC) and None otherwise; ``strategy`` names the strategy the
    block was built with when :func:`check_component` checked several (None otherwise)."""

    mode: ExecutionMode | None
    passed: bool
    close: CloseReport | None
    pcc: PCCReport | None
    error: BaseException | None = None
    relative: RelativeErrorReport | None = None
    strategy: str | None = None

    @property
    def mode_name(self) -> str:
        return self.mode.value if self.mode is not None else "forward"

    @property
    def tag(self) -> str:
        """``mode`` or, when several strategies were checked, ``strategy:mode``."""
        return f"{self.strategy}:{self.mode_name}" if self.strategy is not None else self.mode_name

    def describe(self) -> str:
        if self.error is not None:
            text = "".join(traceback.format_exception_only(type(self.error), self.error)).strip()
            return f"[{self.tag}] raised {text}"
        assert self.close is not None and self.pcc is not None
        status = "ok" if self.passed else "FAILED"
        parts = [self.close.message, self.pcc.message]
        if self.relative is not None:
            parts.append(self.relative.message)
        return f"[{self.tag}] {status}: " + "; ".join(parts)


@dataclass(frozen=True, kw_only=True)
class ComponentReport(ReportMixin):
    """One :class:`ModeResult` per checked mode (per strategy and mode with ``strategies=``).

    ``strategy`` is the strategy's name (with ``strategies=``: the checked names, comma
    separated); ``skipped_strategies`` holds ``(name, reason)`` for the strategies
    ``strategies="all"`` left out because the block's implementations do not cover them."""

    kind: str
    spec: ModuleSpec
    dtype: torch.dtype
    device: torch.device
    strategy: str
    tolerance: Tolerance
    results: tuple[ModeResult, ...]
    passed: bool
    message: str
    skipped_strategies: tuple[tuple[str, str], ...] = ()

    def raise_if_failed(self) -> None:
        if not self.passed:
            errors = [r.error for r in self.results if r.error is not None]
            raise AssertionError(self.message) from (errors[0] if errors else None)

    def result(self, mode: ExecutionMode | str | None, strategy: str | None = None) -> ModeResult:
        """The result of ``mode`` (and, when several strategies were checked, ``strategy``)."""
        wanted = ExecutionMode(mode) if mode is not None else None
        found = [
            r
            for r in self.results
            if r.mode is wanted and (strategy is None or r.strategy == strategy)
        ]
        if len(found) > 1:
            raise KeyError(
                f"mode {mode!r} was checked with several strategies {[r.strategy for r in found]}; pass strategy="
            )
        if found:
            return found[0]
        raise KeyError(f"mode {mode!r} was not checked; checked: {[r.tag for r in self.results]}")

    def failures(self) -> tuple[ModeResult, ...]:
        """The results that did not pass."""
        return tuple(r for r in self.results if not r.passed)


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
    strategies: StrategiesOption | None = None,
) -> ComponentReport:
    """Check ``spec``'s block against its reference in every supported mode.

    ``modes`` restricts the check to some of them (each must be supported). In fp32/fp64
    a mode passes when it is allclose to the reference (the dtype's preset) and its PCC
    reaches the preset; in bf16/fp16, where element-wise allclose is too brittle and is
    reported only, it passes when its PCC reaches the preset *and* the norm-wise error is
    within the preset (``||actual - expected|| <= atol * sqrt(n) + rtol * ||expected||``,
    :func:`~tttv2.testing.metrics.compare_relative_error`), so a wrong scale or offset,
    invisible to the PCC, fails. Where the reference is constant (PCC undefined),
    allclose decides in every dtype.

    ``strategies`` checks several strategies instead of ``execution_strategy``: ``"all"``
    builds the block with every strategy of :class:`tttv2.core.StrategyRegistry` whose
    modes its implementations cover (the others are listed in
    ``report.skipped_strategies``); a list of names or strategy instances builds it with
    each of them (one that cannot build the block is an error). Every (strategy, mode)
    pair gets a :class:`ModeResult` tagged ``strategy:mode``; ``modes`` then restricts
    each strategy to the listed modes it supports."""
    comp = get_component(component) if isinstance(component, str) else component
    device, dtype = torch.device(device), as_dtype(dtype)
    tol = tolerance or tolerance_for(dtype)
    if strategies is not None:
        if execution_strategy is not None:
            raise ValueError(
                f"{comp.kind}: execution_strategy={execution_strategy!r} and strategies={strategies!r} were both "
                "given; pass one of them"
            )
        return _check_strategies(
            comp, spec, device, dtype, seed, tol, modes, strategy_candidates(strategies)
        )

    block = _build(comp, spec, device, dtype, execution_strategy, seed)
    available = modes_of(block)
    if modes is None:
        checked = available
    else:
        checked = tuple(ExecutionMode(m) for m in modes)
        missing = [
            m.value for m in checked if m is not None and m not in available
        ]  # none is None here
        if missing:
            have = [m.value if m is not None else "forward" for m in available]
            raise ValueError(
                f"{comp.kind}: modes {missing} are not supported by this block (supported: {have})"
            )
    if not checked:
        raise ValueError(
            f"{comp.kind}: the block supports no execution mode; nothing would be checked"
        )

    results = _check_modes(comp, spec, block, checked, device, dtype, seed, tol, None)
    strategy = getattr(getattr(block, "execution_strategy", None), "name", None) or "-"
    return _report(comp, spec, device, dtype, f"strategy {strategy}", strategy, tol, results, ())


def _check_strategies(
    comp: Component,
    spec: ModuleSpec,
    device: torch.device,
    dtype: torch.dtype,
    seed: int,
    tol: Tolerance,
    modes: Sequence[ExecutionMode | str] | None,
    candidates: StrategyCandidates,
) -> ComponentReport:
    wanted = None if modes is None else tuple(ExecutionMode(m) for m in modes)
    results: list[ModeResult] = []
    checked: list[str] = []
    skipped = list(candidates.skipped)
    for label, strategy in candidates.strategies:
        try:
            block = _build(comp, spec, device, dtype, strategy, seed)
        except StrategyError as exc:  # the block's implementations do not cover this strategy
            if candidates.explicit:
                raise ValueError(
                    f"{comp.kind}: strategy {label!r} cannot build this block: {exc}"
                ) from exc
            skipped.append((label, str(exc)))
            continue
        built_with = getattr(getattr(block, "execution_strategy", None), "name", None)
        if not isinstance(block, BaseModule) or built_with != strategy.name:
            raise ValueError(
                f"{comp.kind}: strategies= needs build_block to build the block with the strategy it is given; "
                f"asked for {label!r}, got a {type(block).__name__} with strategy {built_with!r}"
            )
        available = modes_of(block)
        in_scope = available if wanted is None else tuple(m for m in wanted if m in available)
        if not in_scope:
            have = [m.value for m in available if m is not None]
            skipped.append((label, f"supports none of the requested modes (supports: {have})"))
            continue
        checked.append(label)
        results += _check_modes(comp, spec, block, in_scope, device, dtype, seed, tol, label)
    if not results:
        why = "; ".join(f"{name}: {reason}" for name, reason in skipped) or "no strategy given"
        raise ValueError(
            f"{comp.kind}: no strategy could check this block; nothing would be checked ({why})"
        )
    names = ", ".join(checked)
    return _report(
        comp, spec, device, dtype, f"strategies {names}", names, tol, results, tuple(skipped)
    )


def _build(
    comp: Component,
    spec: ModuleSpec,
    device: torch.device,
    dtype: torch.dtype,
    strategy: Strategy,
    seed: int,
) -> torch.nn.Module:
    block = comp.build_block(spec, device, strategy)
    if comp.randomize_weights:
        randomize_parameters(block, seed)
    return block.to(device=device, dtype=dtype).eval()


def _check_modes(
    comp: Component,
    spec: ModuleSpec,
    block: torch.nn.Module,
    modes: Sequence[ExecutionMode | None],
    device: torch.device,
    dtype: torch.dtype,
    seed: int,
    tol: Tolerance,
    strategy: str | None,
) -> list[ModeResult]:
    gen = torch.Generator().manual_seed(seed)
    inputs = comp.build_reference_inputs(spec, gen, device, dtype)
    with torch.no_grad():
        expected = comp.run_reference(block, inputs)
        return [
            _check_mode(comp, block, inputs, mode, expected, dtype, tol, strategy) for mode in modes
        ]


def _report(
    comp: Component,
    spec: ModuleSpec,
    device: torch.device,
    dtype: torch.dtype,
    built_with: str,
    strategy: str,
    tol: Tolerance,
    results: Sequence[ModeResult],
    skipped: tuple[tuple[str, str], ...],
) -> ComponentReport:
    passed = all(r.passed for r in results)
    unit = "mode(s)" if all(r.strategy is None for r in results) else "(strategy, mode) pair(s)"
    head = (
        f"{comp.kind} ({dtype}, {device}, {built_with}) "
        f"{'passed' if passed else 'FAILED'} in {sum(r.passed for r in results)}/{len(results)} {unit}"
    )
    lines = [head, f"spec: {spec!r}", *(r.describe() for r in results)]
    lines += [f"[{name}] skipped: {reason}" for name, reason in skipped]
    return ComponentReport(
        kind=comp.kind,
        spec=spec,
        dtype=dtype,
        device=device,
        strategy=strategy,
        tolerance=tol,
        results=tuple(results),
        passed=passed,
        message="\n".join(lines),
        skipped_strategies=skipped,
    )


def _check_mode(
    comp: Component,
    block: torch.nn.Module,
    inputs: Any,
    mode: ExecutionMode | None,
    expected: torch.Tensor,
    dtype: torch.dtype,
    tol: Tolerance,
    strategy: str | None = None,
) -> ModeResult:
    try:
        actual = comp.run_block(block, inputs, mode)
    except Exception as exc:  # reported per mode, so one broken mode does not hide the others
        return ModeResult(mode, False, None, None, exc, strategy=strategy)
    mode_name = mode.value if mode is not None else "forward"
    label = (
        f"{comp.kind}[{strategy}:{mode_name}]"
        if strategy is not None
        else f"{comp.kind}[{mode_name}]"
    )
    close = compare_close(actual, expected, dtype, atol=tol.atol, rtol=tol.rtol, label=label)
    corr = compare_pcc(actual, expected, tol.pcc, label=label)
    relative = None
    if _is_constant(expected):  # e.g. LayerNorm over one channel: PCC is undefined there
        passed = close.passed
    elif tol.prefers_pcc:  # PCC for the shape of the values, the error norm for their size
        relative = compare_relative_error(
            actual, expected, dtype, atol=tol.atol, rtol=tol.rtol, label=label
        )
        passed = corr.passed and relative.passed
    else:
        passed = corr.passed and close.passed
    return ModeResult(mode, passed, close, corr, relative=relative, strategy=strategy)


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
    strategies: StrategiesOption | None = None,
) -> None:
    """Run :func:`check_component` over ``max_examples`` random valid specs (hypothesis
    shrinks a failure to a minimal spec); raises ``AssertionError`` on the first failure.
    ``strategies`` is passed on (e.g. ``"all"``: every registered strategy the block covers)."""
    comp = get_component(component) if isinstance(component, str) else component

    @settings(
        max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(spec=specs if specs is not None else comp.make_spec_strategy())
    def run(spec: ModuleSpec) -> None:
        check_component(
            comp,
            spec,
            device=device,
            dtype=dtype,
            execution_strategy=execution_strategy,
            seed=seed,
            strategies=strategies,
        ).raise_if_failed()

    run()
