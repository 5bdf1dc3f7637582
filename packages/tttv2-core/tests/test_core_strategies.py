"""The built-in strategies, the seed's strategy API, and DynamicStrategy selecting among
registered strategies from a RuntimeContext."""

from __future__ import annotations

import pytest
import torch
from core_toys import PrefillDecodeSpec, ToyLeaf, ToySpec, ToyStack, leaves

from tttv2.core import (
    ContinuousBatchingStrategy,
    DynamicStrategy,
    ExecutionMode,
    ModeNotSupportedError,
    MultiModeStrategy,
    PrefillDecodeStrategy,
    RuntimeContext,
    StrategyRegistry,
    UnifiedStrategy,
    UnknownNameError,
)
from tttv2.core.strategies import Rule

P, D, U = ExecutionMode.PREFILL, ExecutionMode.DECODE, ExecutionMode.UNIFIED
LC, SP, CB = ExecutionMode.LONG_CONTEXT, ExecutionMode.SPECULATIVE, ExecutionMode.CONTINUOUS_BATCH


def test_built_in_strategy_modes() -> None:
    assert PrefillDecodeStrategy().get_execution_modes() == [P, D]
    assert UnifiedStrategy().get_execution_modes() == [U]
    assert MultiModeStrategy().get_execution_modes() == [P, D, LC, SP]
    assert ContinuousBatchingStrategy().get_execution_modes() == [P, D, CB]
    unified = UnifiedStrategy()
    assert [unified.resolve_mode(m) for m in (P, D, U)] == [U, U, U]
    assert unified.supports(P) and unified.supports(D) and not unified.supports(LC)
    assert not PrefillDecodeStrategy().supports(U)


def test_seed_strategy_api() -> None:
    """specialize_module(spec, device) -> {mode: implementation}; select_implementation
    picks one for a mode."""
    strategy = StrategyRegistry.get("continuous_batching")
    impls = strategy.specialize_module(ToySpec(4), "cpu")
    assert set(impls) == {P, D, CB}
    assert len({id(i) for i in impls.values()}) == 3
    assert [type(i).ran for i in impls.values()] == ["prefill", "decode", "continuous_batch"]
    assert strategy.select_implementation(CB, impls) is impls[CB]
    assert strategy.select_implementation("decode", impls) is impls[D]
    with pytest.raises(ModeNotSupportedError, match="'speculative'.*'continuous_batching'"):
        strategy.select_implementation(SP, impls)


def test_multi_mode_options_and_prefill_fallback() -> None:
    assert MultiModeStrategy(chunk_size=256).chunk_size == 256
    assert StrategyRegistry.get("multi_mode", chunk_size=64).options == {"chunk_size": 64}
    for bad in (0, -1, 2.5, True, "64"):
        with pytest.raises(ValueError, match="chunk_size"):
            MultiModeStrategy(chunk_size=bad)
    # a block that registered no long-context/speculative implementation reuses prefill's
    leaf = ToyLeaf(PrefillDecodeSpec(4), execution_strategy="multi_mode")
    assert leaf.implementations[LC] is leaf.implementations[P] is leaf.implementations[SP]
    assert leaf.supported_modes() == (P, D, LC, SP)
    leaf.set_mode(LC)
    leaf(torch.ones(2, 4))
    assert leaf.last_ran == "prefill"
    # a block that did register them gets its own
    own = ToyLeaf(ToySpec(4), execution_strategy="multi_mode")
    assert len({id(i) for i in own.implementations.values()}) == 4


# -- RuntimeContext -------------------------------------------------------------------
def test_runtime_context_validates() -> None:
    ctx = RuntimeContext(batch_size=4, seq_len=100, num_new_tokens=4, available_memory=1 << 30)
    assert ctx.latency_critical is False
    for bad in (
        {"batch_size": 0},
        {"seq_len": -1},
        {"num_new_tokens": 1.5},
        {"batch_size": True},
        {"available_memory": -1},
        {"available_memory": 1.5},
        {"available_memory": "1GB"},
        {"latency_critical": 1},
    ):
        with pytest.raises(ValueError, match=f"RuntimeContext.{next(iter(bad))}="):
            RuntimeContext(**bad)


# -- DynamicStrategy ------------------------------------------------------------------
def test_dynamic_default_rules_select_chunked_prefill_for_long_prompts_or_low_memory() -> None:
    leaf = ToyLeaf(ToySpec(4), execution_strategy="dynamic")
    x = torch.ones(3, 4)
    strategy = leaf.execution_strategy
    assert isinstance(strategy, DynamicStrategy)
    assert set(strategy.candidates) == {"multi_mode", "prefill_decode"}
    assert leaf.current_mode is P
    leaf(x)
    assert leaf.last_ran == "prefill"  # default context: short prompt, memory unknown

    leaf.set_mode(P, context=RuntimeContext(seq_len=10_000, num_new_tokens=10_000))
    leaf(x)
    assert leaf.last_ran == "long_context" and leaf.current_mode is P
    leaf.set_mode(D, context=RuntimeContext(seq_len=10_001))
    leaf(x)
    assert leaf.last_ran == "decode"  # only prefill is remapped

    leaf.set_mode(P, context=RuntimeContext(seq_len=100, available_memory=512 << 20))
    leaf(x)
    assert leaf.last_ran == "long_context"
    leaf.set_mode(P, context=RuntimeContext(seq_len=100, available_memory=64 << 30))
    leaf(x)
    assert leaf.last_ran == "prefill"

    assert type(strategy.select_strategy(RuntimeContext(seq_len=8192))) is MultiModeStrategy
    assert type(strategy.select_strategy(RuntimeContext(seq_len=8191))) is PrefillDecodeStrategy


def test_dynamic_custom_rules_choose_among_registered_strategies() -> None:
    rules = [
        {"strategy": "unified", "when": {"max_batch_size": 1, "latency_critical": True}},
        {
            "strategy": "continuous_batching",
            "when": {"min_batch_size": 8},
            "remap": {"decode": "continuous_batch"},
        },
    ]
    stack = ToyStack(
        ToySpec(4), execution_strategy=DynamicStrategy(rules=rules, default="prefill_decode")
    )
    x = torch.ones(2, 4)
    assert stack.supported_modes() == (P, D, U, CB)

    def ran(mode, **context) -> set[str]:
        stack.set_mode(mode, context=RuntimeContext(**context))
        stack(x)
        return {leaf.last_ran for leaf in leaves(stack)}

    assert ran(D, batch_size=1, latency_critical=True) == {"unified"}
    assert ran(D, batch_size=1) == {"decode"}
    assert ran(D, batch_size=8) == {"continuous_batch"}
    assert ran(P, batch_size=8) == {"prefill"}
    assert ran(P, batch_size=1, latency_critical=True) == {"unified"}
    # the first matching rule wins
    both = DynamicStrategy(
        rules=[{"strategy": "unified", "when": {"min_seq_len": 1}}, {"strategy": "multi_mode"}]
    )
    assert type(both.select_strategy(RuntimeContext())) is UnifiedStrategy


def test_dynamic_supported_modes_follow_the_candidates() -> None:
    plain = ToyLeaf(PrefillDecodeSpec(4), execution_strategy="dynamic")  # multi_mode falls back
    assert plain.supported_modes() == (P, D, LC, SP)
    plain.set_mode(P, context=RuntimeContext(seq_len=20_000))
    plain(torch.ones(1, 4))
    assert plain.last_ran == "prefill"
    strategy = DynamicStrategy(rules=[{"strategy": "multi_mode", "when": {"min_seq_len": 8}}])
    # a mode is optional for the dynamic strategy when every candidate listing it says so
    assert strategy.optional_modes() == MultiModeStrategy().optional_modes() == frozenset({LC, SP})


def test_dynamic_options_are_plain_data_and_rules_are_checked() -> None:
    strategy = StrategyRegistry.get(
        "dynamic", rules=[{"strategy": "unified", "when": {"max_seq_len": 16}}]
    )
    assert strategy.options == {
        "rules": [{"strategy": "unified", "when": {"max_seq_len": 16}, "remap": {}}],
        "default": "prefill_decode",
    }
    assert isinstance(strategy.rules[0], Rule)
    with pytest.raises(ValueError, match="unknown condition 'min_memory'.*max_available_memory"):
        DynamicStrategy(rules=[{"strategy": "unified", "when": {"min_memory": 1}}])
    with pytest.raises(ValueError, match=r"Rule.when\['min_seq_len'\]='long'"):
        DynamicStrategy(rules=[{"strategy": "unified", "when": {"min_seq_len": "long"}}])
    with pytest.raises(ValueError, match="latency_critical"):
        DynamicStrategy(rules=[{"strategy": "unified", "when": {"latency_critical": "yes"}}])
    with pytest.raises(UnknownNameError, match="'fastest'"):
        DynamicStrategy(rules=[{"strategy": "fastest"}])
    with pytest.raises(UnknownNameError, match="execution mode 'chunked'"):
        DynamicStrategy(rules=[{"strategy": "multi_mode", "remap": {"prefill": "chunked"}}])
    with pytest.raises(UnknownNameError):
        DynamicStrategy(default="nope")
