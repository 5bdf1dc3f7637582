"""BaseModule: default strategy, dispatch on the current mode, composites, errors, weights
stored once, and mode switches that allocate nothing."""

from __future__ import annotations

import pytest
import torch
from core_toys import (
    PrefillDecodeSpec,
    ToyBlock,
    ToyLeaf,
    ToySpec,
    ToyStack,
    assert_close,
    leaves,
    reference,
)
from torch.overrides import TorchFunctionMode

from tttv2.core import (
    ExecutionMode,
    ExecutionStrategy,
    ModeNotSupportedError,
    PrefillDecodeStrategy,
    StrategyError,
    UnknownNameError,
)

P, D, U = ExecutionMode.PREFILL, ExecutionMode.DECODE, ExecutionMode.UNIFIED
LC, SP, CB = ExecutionMode.LONG_CONTEXT, ExecutionMode.SPECULATIVE, ExecutionMode.CONTINUOUS_BATCH
STRATEGIES = ("prefill_decode", "unified", "multi_mode", "continuous_batching", "dynamic")


def x_for(spec: ToySpec, tokens: int = 3) -> torch.Tensor:
    return torch.randn(tokens, spec.dim, generator=torch.Generator().manual_seed(7))


def stack_reference(stack: ToyStack, x: torch.Tensor) -> torch.Tensor:
    for block in stack.blocks:
        x = reference(block.second, torch.tanh(reference(block.first, x)))
    return x


# -- defaults and dispatch --------------------------------------------------------------
def test_default_strategy_is_prefill_decode_starting_in_prefill() -> None:
    leaf = ToyLeaf(ToySpec(8))
    assert isinstance(leaf.execution_strategy, PrefillDecodeStrategy)
    assert leaf.supported_modes() == (P, D)
    assert set(leaf.implementations) == {P, D}
    assert leaf.current_mode is P
    x = x_for(leaf.spec)
    assert_close(leaf(x), reference(leaf, x))
    assert leaf.last_ran == "prefill"
    assert "prefill_decode" in repr(leaf) and "prefill" in repr(leaf)


def test_composites_start_in_prefill_too() -> None:
    stack = ToyStack(ToySpec(4))
    assert [m.current_mode for m in stack.modules() if hasattr(m, "current_mode")] == [P] * 7
    x = x_for(stack.spec)
    assert_close(stack(x), stack_reference(stack, x))
    assert {leaf.last_ran for leaf in leaves(stack)} == {"prefill"}
    assert ToyStack(ToySpec(4), execution_strategy="unified").current_mode is P  # served by UNIFIED


def test_forward_dispatches_on_current_mode() -> None:
    leaf = ToyLeaf(ToySpec(8), execution_strategy="multi_mode")
    x = x_for(leaf.spec)
    for mode in (D, LC, SP, P, D):
        leaf.set_mode(mode)
        assert leaf.current_mode is mode
        assert_close(leaf(x), reference(leaf, x))
        assert leaf.last_ran == mode.value
    leaf.set_mode("speculative")  # names work too
    assert leaf.current_mode is SP


def test_prefill_forward_decode_forward_and_run_in_mode() -> None:
    leaf = ToyLeaf(ToySpec(4), execution_strategy="continuous_batching")
    x = x_for(leaf.spec)
    assert_close(leaf.decode_forward(x[:1]), reference(leaf, x[:1]))
    assert (leaf.last_ran, leaf.current_mode) == ("decode", D)
    assert_close(leaf.prefill_forward(x), reference(leaf, x))
    assert (leaf.last_ran, leaf.current_mode) == ("prefill", P)
    leaf.run_in_mode("continuous_batch", x)
    assert (leaf.last_ran, leaf.current_mode) == ("continuous_batch", CB)


def test_unsupported_mode_is_a_clear_error_and_changes_nothing() -> None:
    leaf = ToyLeaf(ToySpec(4))
    leaf.set_mode(D)
    with pytest.raises(ModeNotSupportedError) as info:
        leaf.set_mode(LC)
    message = str(info.value)
    assert (
        "'long_context'" in message
        and "'prefill_decode'" in message
        and "prefill, decode" in message
    )
    assert leaf.current_mode is D
    leaf(x_for(leaf.spec))
    assert leaf.last_ran == "decode"
    with pytest.raises(ModeNotSupportedError):
        leaf.run_in_mode(U, x_for(leaf.spec))
    with pytest.raises(UnknownNameError, match="registered: .*prefill"):
        leaf.set_mode("prefil")


def test_leaf_without_a_prefill_mode_starts_with_none() -> None:
    class LongOnly(ExecutionStrategy):
        name = "core_test_long_only"

        def get_execution_modes(self) -> list[ExecutionMode]:
            return [LC]

    leaf = ToyLeaf(ToySpec(4), execution_strategy=LongOnly())
    assert leaf.current_mode is None and leaf.supported_modes() == (LC,)
    with pytest.raises(ModeNotSupportedError, match="no mode selected"):
        leaf(x_for(leaf.spec))
    leaf.set_mode(LC)
    leaf(x_for(leaf.spec))
    assert leaf.last_ran == "long_context"


# -- strategies must deliver what they claim --------------------------------------------
class ClaimsDecodeGivesPrefill(PrefillDecodeStrategy):
    name = "core_test_liar"

    def specialize_module(self, module_spec, device):
        return {P: super().specialize_module(module_spec, device)[P]}


class NoForward(PrefillDecodeStrategy):
    name = "core_test_no_forward"

    def specialize_module(self, module_spec, device):
        impls = super().specialize_module(module_spec, device)
        impls[D] = object()
        return impls


def test_strategy_must_implement_every_mode_it_claims() -> None:
    with pytest.raises(
        StrategyError, match=r"claims modes \['prefill', 'decode'\].*for \['decode'\]"
    ):
        ToyLeaf(ToySpec(4), execution_strategy=ClaimsDecodeGivesPrefill())
    with pytest.raises(StrategyError, match="'decode' has no forward"):
        ToyLeaf(ToySpec(4), execution_strategy=NoForward())


def test_missing_registered_implementation_names_what_exists() -> None:
    with pytest.raises(StrategyError) as info:
        ToyLeaf(PrefillDecodeSpec(4), execution_strategy="unified")
    message = str(info.value)
    assert (
        "PrefillDecodeSpec" in message and "'unified'" in message and "prefill, decode" in message
    )


def test_variants_pick_among_registered_implementations() -> None:
    leaf = ToyLeaf(ToySpec(4), execution_strategy=PrefillDecodeStrategy(variants={"decode": "alt"}))
    leaf.decode_forward(x_for(leaf.spec))
    assert leaf.last_ran == "decode/alt"
    leaf.prefill_forward(x_for(leaf.spec))
    assert leaf.last_ran == "prefill"
    with pytest.raises(StrategyError, match="no variant 'fast'; registered: alt, default"):
        ToyLeaf(ToySpec(4), execution_strategy=PrefillDecodeStrategy(variants={"decode": "fast"}))


# -- composites -------------------------------------------------------------------------
def test_composite_propagates_modes_to_every_leaf() -> None:
    stack = ToyStack(ToySpec(6), execution_strategy="multi_mode", depth=3)
    x = x_for(stack.spec)
    assert len(leaves(stack)) == 6
    for mode in (D, LC, P):
        stack.set_mode(mode)
        assert all(m.current_mode is mode for m in stack.modules() if hasattr(m, "current_mode"))
        assert_close(stack(x), stack_reference(stack, x))
        assert {leaf.last_ran for leaf in leaves(stack)} == {mode.value}
    assert stack.supported_modes() == (P, D, LC, SP)
    assert_close(stack.decode_forward(x), stack_reference(stack, x))
    assert {leaf.last_ran for leaf in leaves(stack)} == {"decode"}


def test_composite_with_unified_strategy_resolves_prefill_and_decode_to_unified() -> None:
    stack = ToyStack(ToySpec(4), execution_strategy="unified")
    x = x_for(stack.spec)
    assert stack.supported_modes() == (P, D, U)
    for mode in (P, D, U):
        stack.set_mode(mode)
        assert stack.current_mode is mode
        assert_close(stack(x), stack_reference(stack, x))
        assert {leaf.last_ran for leaf in leaves(stack)} == {"unified"}
    stack.prefill_forward(x)
    assert {leaf.last_ran for leaf in leaves(stack)} == {"unified"}
    with pytest.raises(ModeNotSupportedError):
        stack.set_mode(LC)


def test_composite_set_mode_is_all_or_nothing() -> None:
    block = ToyBlock(ToySpec(4), execution_strategy="multi_mode")
    block.second = ToyLeaf(ToySpec(4), execution_strategy="prefill_decode")
    block.set_mode(D)
    assert block.supported_modes() == (P, D)
    with pytest.raises(ModeNotSupportedError, match=r"ToyLeaf \(second\)"):
        block.set_mode(LC)
    assert [m.current_mode for m in (block, block.first, block.second)] == [D, D, D]
    block(x_for(block.spec))
    assert (block.first.last_ran, block.second.last_ran) == ("decode", "decode")


# -- switching strategy at run time -----------------------------------------------------
def params_of(module: torch.nn.Module) -> list[tuple[str, int, int]]:
    return [(n, id(p), p.data_ptr()) for n, p in module.named_parameters()]


def test_switch_strategy_keeps_weights_and_mode() -> None:
    leaf = ToyLeaf(ToySpec(4))
    before = params_of(leaf)
    x = x_for(leaf.spec)
    expected = reference(leaf, x)
    leaf.set_mode(D)
    leaf.switch_strategy("multi_mode")
    assert leaf.execution_strategy.name == "multi_mode" and leaf.current_mode is D
    assert set(leaf.implementations) == {P, D, LC, SP}
    assert_close(leaf(x), expected)
    assert leaf.last_ran == "decode"
    leaf.switch_strategy("unified")
    assert leaf.current_mode is D
    leaf(x)
    assert leaf.last_ran == "unified"
    assert params_of(leaf) == before


def test_switch_to_strategy_without_the_current_mode_leaves_no_mode() -> None:
    leaf = ToyLeaf(ToySpec(4), execution_strategy="multi_mode")
    leaf.set_mode(LC)
    leaf.switch_strategy("prefill_decode")
    assert leaf.current_mode is None
    with pytest.raises(ModeNotSupportedError, match="no mode selected"):
        leaf(x_for(leaf.spec))
    with pytest.raises(ModeNotSupportedError):
        leaf.run_in_mode(LC, x_for(leaf.spec))
    leaf.set_mode(P)
    leaf(x_for(leaf.spec))
    assert leaf.last_ran == "prefill"


def test_failed_switch_changes_nothing() -> None:
    block = ToyBlock(ToySpec(4))
    block.second = ToyLeaf(PrefillDecodeSpec(4))  # has no unified implementation
    block.set_mode(D)
    old = [
        (m.execution_strategy, dict(m.implementations), m.current_mode)
        for m in (block, block.first, block.second)
    ]
    with pytest.raises(StrategyError, match="PrefillDecodeSpec"):
        block.switch_strategy("unified")
    assert [
        (m.execution_strategy, dict(m.implementations), m.current_mode)
        for m in (block, block.first, block.second)
    ] == old
    block(x_for(block.spec))
    assert (block.first.last_ran, block.second.last_ran) == ("decode", "decode")


def test_composite_switch_strategy_reaches_every_leaf() -> None:
    stack = ToyStack(ToySpec(4))
    stack.set_mode(D)
    before = params_of(stack)
    stack.switch_strategy("unified")
    strategies = {
        id(m.execution_strategy) for m in stack.modules() if hasattr(m, "execution_strategy")
    }
    assert len(strategies) == 1 and stack.execution_strategy.name == "unified"
    assert all(leaf.current_mode is D for leaf in leaves(stack))
    x = x_for(stack.spec)
    assert_close(stack(x), stack_reference(stack, x))
    assert {leaf.last_ran for leaf in leaves(stack)} == {"unified"}
    assert params_of(stack) == before


# -- weights once, switching allocates nothing ------------------------------------------
def _tensors_in(obj: object, seen: set[int] | None = None) -> int:
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return 1
    if isinstance(obj, dict):
        return sum(_tensors_in(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple, set)):
        return sum(_tensors_in(v, seen) for v in obj)
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return _tensors_in(vars(obj), seen)
    return 0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_weights_are_stored_once_whatever_the_number_of_modes(strategy: str) -> None:
    spec = ToySpec(16)
    leaf = ToyLeaf(spec, execution_strategy=strategy)
    assert sum(p.numel() for p in leaf.parameters()) == 16 * 16 + 16
    assert list(leaf.state_dict()) == ["weight", "bias"]
    assert len(leaf.implementations) == len(leaf.execution_strategy.get_execution_modes())
    assert all(_tensors_in(impl) == 0 for impl in leaf.implementations.values())
    stack = ToyStack(spec, execution_strategy=strategy)
    assert sum(p.numel() for p in stack.parameters()) == 4 * (16 * 16 + 16)


class CountOps(TorchFunctionMode):
    """Sees every torch function and Tensor method called while active: any tensor made
    or touched from Python (set_mode is Python) goes through it. (A TorchDispatchMode
    would see the same here but imports torch._dynamo on first use, ~8 s of CPU.)"""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.ops.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


def _cycle_modes(module, modes, rounds: int = 5) -> None:
    for _ in range(rounds):
        for mode in modes:
            module.set_mode(mode)


@pytest.mark.parametrize("strategy", ["multi_mode", "unified", "dynamic"])
def test_switching_modes_allocates_nothing(strategy: str) -> None:
    stack = ToyStack(ToySpec(32), execution_strategy=strategy)
    modes = stack.supported_modes()
    assert len(modes) >= 2
    before = params_of(stack)
    weights = [p.detach().clone() for p in stack.parameters()]

    with CountOps() as counter:  # positive controls: the counter sees allocations
        torch.empty(4)
        stack.blocks[0].first.weight.clone()
    assert counter.ops[:2] == ["empty", "clone"]

    with CountOps() as counter:
        _cycle_modes(stack, modes)
    assert counter.ops == []

    assert params_of(stack) == before
    for p, w in zip(stack.parameters(), weights, strict=True):
        assert torch.equal(p, w)


def test_profiler_sees_no_allocation_while_switching() -> None:
    """The allocator's view (C++ included): no memory event at all while switching."""
    stack = ToyStack(ToySpec(32), execution_strategy="multi_mode")

    def profiled(fn) -> list:
        activities = [torch.profiler.ProfilerActivity.CPU]
        with torch.profiler.profile(activities=activities, profile_memory=True) as prof:
            fn()
        return list(prof.events())

    assert any(e.cpu_memory_usage > 0 for e in profiled(lambda: torch.ones(1024)))  # control
    assert profiled(lambda: _cycle_modes(stack, stack.supported_modes())) == []
