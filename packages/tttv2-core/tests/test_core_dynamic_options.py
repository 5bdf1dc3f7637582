"""DynamicStrategy passes ``variants`` on to its candidates and each rule's ``options`` to
the strategy it picks; bad rules fail by name."""

from __future__ import annotations

import textwrap

import pytest
import torch
from core_toys import ToyLeaf, ToySpec

from tttv2.core import (
    DynamicStrategy,
    ExecutionMode,
    ModuleConfig,
    MultiModeStrategy,
    RuntimeContext,
    SpecError,
    StrategyRegistry,
    create_module,
)
from tttv2.core.strategies import Rule

P, D, LC = ExecutionMode.PREFILL, ExecutionMode.DECODE, ExecutionMode.LONG_CONTEXT

CHUNKED = [
    {
        "strategy": "multi_mode",
        "when": {"min_seq_len": 100_000},
        "remap": {"prefill": "long_context"},
        "options": {"chunk_size": 4096},
    },
    {
        "strategy": "multi_mode",
        "when": {"min_seq_len": 1000},
        "remap": {"prefill": "long_context"},
        "options": {"chunk_size": 512},
    },
    {"strategy": "multi_mode", "when": {"max_available_memory": 1 << 30}},
]


def test_variants_reach_the_candidates() -> None:
    leaf = ToyLeaf(ToySpec(4), execution_strategy=DynamicStrategy(variants={"decode": "alt"}))
    for candidate in leaf.execution_strategy.candidates.values():
        assert candidate.variants == {D: "alt"}
    leaf.set_mode(D, context=RuntimeContext(seq_len=10))
    leaf(torch.ones(1, 4))
    assert leaf.last_ran == "decode/alt"
    by_name = StrategyRegistry.get("dynamic", variants={"decode": "alt"})
    assert by_name.variants == {D: "alt"} and by_name.options["default"] == "prefill_decode"


def test_each_rule_passes_its_options_to_the_strategy_it_picks() -> None:
    strategy = DynamicStrategy(rules=CHUNKED)

    def chunk(**context) -> int | None:
        chosen = strategy.select_strategy(RuntimeContext(**context))
        assert isinstance(chosen, MultiModeStrategy)
        return chosen.chunk_size

    assert chunk(seq_len=200_000) == 4096
    assert chunk(seq_len=2000) == 512
    assert chunk(seq_len=10, available_memory=1 << 20) is None  # no options: the hardware's value
    assert set(strategy.candidates) == {
        "multi_mode",
        "multi_mode(chunk_size=4096)",
        "multi_mode(chunk_size=512)",
        "prefill_decode",
    }
    # the options are plain data: the same strategy can be rebuilt from them
    assert strategy.options["rules"][0]["options"] == {"chunk_size": 4096}
    assert "options" not in strategy.options["rules"][2]
    again = StrategyRegistry.get("dynamic", **strategy.options)
    assert again.select_strategy(RuntimeContext(seq_len=2000)).chunk_size == 512


def test_rule_options_from_a_toml_file(tmp_path) -> None:
    path = tmp_path / "dynamic.toml"
    path.write_text(
        textwrap.dedent("""
        execution_strategy = "dynamic"

        [spec]
        kind = "core_test_toy"
        dim = 4

        [strategy_config]
        variants = { decode = "alt" }

        [[strategy_config.rules]]
        strategy = "multi_mode"
        when = { min_seq_len = 1000 }
        remap = { prefill = "long_context" }
        options = { chunk_size = 256 }
    """)
    )
    module = create_module(ModuleConfig.from_file(path))
    strategy = module.execution_strategy
    assert strategy.select_strategy(RuntimeContext(seq_len=5000)).chunk_size == 256
    module.set_mode(P, context=RuntimeContext(seq_len=5000))
    module(torch.ones(1, 4))
    assert module.last_ran == "long_context"
    module.set_mode(D, context=RuntimeContext(seq_len=5000))
    module(torch.ones(1, 4))
    assert module.last_ran == "decode/alt"


def test_bad_rule_options_fail_naming_the_rule() -> None:
    bad = [{"strategy": "unified"}, {"strategy": "multi_mode", "options": {"chunk_sise": 64}}]
    with pytest.raises(SpecError) as info:
        DynamicStrategy(rules=bad)
    assert str(info.value).startswith("DynamicStrategy.rules[1].options.chunk_sise=64 is invalid")
    assert "chunk_size" in str(info.value)
    with pytest.raises(SpecError, match=r"rules\[0\]\.options\.chunk_size=0"):
        DynamicStrategy(rules=[{"strategy": "multi_mode", "options": {"chunk_size": 0}}])
    with pytest.raises(SpecError, match=r"Rule\.options\['variants'\].*DynamicStrategy"):
        DynamicStrategy(
            rules=[{"strategy": "multi_mode", "options": {"variants": {"decode": "alt"}}}]
        )
    with pytest.raises(SpecError, match="Rule.options=.*options by name"):
        Rule(strategy="multi_mode", options=[("chunk_size", 64)])  # type: ignore[arg-type]


@pytest.mark.parametrize("name", [3, None, "", ["multi_mode"]])
def test_rule_and_default_strategy_names_must_be_strings(name: object) -> None:
    with pytest.raises(SpecError) as info:
        DynamicStrategy(rules=[{"strategy": name}])
    assert (info.value.spec, info.value.field) == ("Rule", "strategy")
    assert "non-empty str" in str(info.value)
    with pytest.raises(SpecError) as info:
        DynamicStrategy(default=name)  # type: ignore[arg-type]
    assert (info.value.spec, info.value.field) == ("DynamicStrategy", "default")


def test_malformed_rule_tables_fail_by_name() -> None:
    with pytest.raises(SpecError, match=r"Rule\.option=.*strategy, when, remap, options"):
        DynamicStrategy(rules=[{"strategy": "multi_mode", "option": {"chunk_size": 64}}])
    with pytest.raises(SpecError, match=r"Rule\.strategy=None .*required"):
        DynamicStrategy(rules=[{"when": {"min_seq_len": 1}}])
    with pytest.raises(SpecError, match=r"Rule\.when=\[.*mapping"):
        DynamicStrategy(rules=[{"strategy": "unified", "when": [("min_seq_len", 1)]}])
    with pytest.raises(SpecError, match=r"DynamicStrategy\.rules='unified'"):
        DynamicStrategy(rules=["unified"])
