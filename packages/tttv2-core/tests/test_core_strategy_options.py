"""Strategy options: each built-in strategy declares the options it takes and rejects
others (a typo in a configuration file fails instead of being ignored); a strategy that
declares none accepts anything, as before. MultiModeStrategy's chunk_size defaults to None
(the hardware's tuned value)."""

from __future__ import annotations

import pytest
from core_toys import ToyLeaf, ToySpec

from tttv2.core import (
    ContinuousBatchingStrategy,
    DynamicStrategy,
    ExecutionMode,
    ExecutionStrategy,
    ModuleConfig,
    MultiModeStrategy,
    PrefillDecodeStrategy,
    SpecError,
    StrategyRegistry,
    UnifiedStrategy,
    create_module,
)


class UndeclaredStrategy(ExecutionStrategy):
    """A third-party strategy written before strategies declared their options."""

    name = "core_test_undeclared"

    def get_execution_modes(self) -> list[ExecutionMode]:
        return [ExecutionMode.PREFILL, ExecutionMode.DECODE]


class DeclaredStrategy(UndeclaredStrategy):
    name = "core_test_declared"
    accepted_options = {"depth"}  # a plain set is fine


class InheritsFromBuiltIn(PrefillDecodeStrategy):
    """Subclass of a built-in that passes its own option to the base constructor."""

    def __init__(self, note: str = "", **options: object) -> None:
        super().__init__(note=note, **options)  # type: ignore[arg-type]


def test_a_typo_in_strategy_config_fails_naming_the_valid_option() -> None:
    config = ModuleConfig(
        ToySpec(4), execution_strategy="multi_mode", strategy_config={"chunk_sise": 5}
    )
    with pytest.raises(SpecError) as info:
        create_module(config)
    message = str(info.value)
    assert "chunk_sise" in message and "chunk_size" in message, message
    assert isinstance(info.value, ValueError)
    assert (info.value.field, info.value.value) == ("chunk_sise", 5)


@pytest.mark.parametrize(
    ("cls", "valid"),
    [
        (PrefillDecodeStrategy, "variants"),
        (UnifiedStrategy, "variants"),
        (ContinuousBatchingStrategy, "variants"),
        (MultiModeStrategy, "chunk_size, variants"),
        (DynamicStrategy, "default, rules, variants"),
    ],
)
def test_built_ins_reject_unknown_options(cls: type[ExecutionStrategy], valid: str) -> None:
    with pytest.raises(SpecError) as info:
        cls(speed="fast")
    assert (
        str(info.value)
        == f"{cls.__name__}.speed='fast' is invalid: expected a known option: {valid}"
    )
    with pytest.raises(SpecError, match="speed"):
        StrategyRegistry.get(cls.name, speed="fast")


def test_declared_options_and_variants_are_accepted() -> None:
    assert MultiModeStrategy(chunk_size=8, variants={"decode": "alt"}).variants == {
        ExecutionMode.DECODE: "alt"
    }
    assert PrefillDecodeStrategy(variants={"decode": "alt"}).options == {}
    assert DeclaredStrategy(depth=2).options == {"depth": 2}
    with pytest.raises(SpecError, match=r"DeclaredStrategy\.width=3 .*depth, variants"):
        DeclaredStrategy(width=3)


def test_strategies_that_declare_nothing_accept_any_option() -> None:
    assert UndeclaredStrategy.accepted_options is None
    assert UndeclaredStrategy(anything=1, chunk_sise=5).options == {"anything": 1, "chunk_sise": 5}
    # the declaration is not inherited: a subclass of a built-in keeps working unchanged
    assert InheritsFromBuiltIn.accepted_options is None
    assert InheritsFromBuiltIn(note="x").options == {"note": "x"}
    leaf = ToyLeaf(ToySpec(4), execution_strategy=InheritsFromBuiltIn(note="x"))
    assert leaf.supported_modes() == (ExecutionMode.PREFILL, ExecutionMode.DECODE)


def test_multi_mode_chunk_size_defaults_to_the_hardware_value() -> None:
    default = MultiModeStrategy()
    assert default.chunk_size is None
    assert default.options == {"chunk_size": None}  # what blocks read: None means "ask tttv2-hw"
    assert StrategyRegistry.get("multi_mode").chunk_size is None
    module = create_module(ModuleConfig(ToySpec(4), execution_strategy="multi_mode"))
    assert module.execution_strategy.chunk_size is None
    explicit = MultiModeStrategy(chunk_size=384)
    assert explicit.chunk_size == 384 and explicit.options == {"chunk_size": 384}
    for bad in (0, -1, 2.5, True, "64"):
        with pytest.raises(SpecError, match=f"MultiModeStrategy.chunk_size={bad!r} .*or None"):
            MultiModeStrategy(chunk_size=bad)
