"""StrategyRegistry: built-ins, register/get/list, unknown names, and third-party strategies
discovered through the ``tttv2.strategies`` entry-point group of a real (test) distribution."""

from __future__ import annotations

import ast
import sys
import textwrap
from pathlib import Path

import pytest
from core_toys import ToyLeaf, ToySpec

from tttv2.core import (
    ContinuousBatchingStrategy,
    DynamicStrategy,
    ExecutionMode,
    ExecutionStrategy,
    MultiModeStrategy,
    PrefillDecodeStrategy,
    SpecError,
    StrategyError,
    StrategyRegistry,
    UnifiedStrategy,
    UnknownNameError,
)

BUILT_IN = {
    "prefill_decode": PrefillDecodeStrategy,
    "unified": UnifiedStrategy,
    "multi_mode": MultiModeStrategy,
    "continuous_batching": ContinuousBatchingStrategy,
    "dynamic": DynamicStrategy,
}


@pytest.fixture
def registry():
    """The registry, restored afterwards (tests in this process share it)."""
    saved = (dict(StrategyRegistry._strategies), dict(StrategyRegistry._broken))
    yield StrategyRegistry
    StrategyRegistry._strategies.clear()
    StrategyRegistry._strategies.update(saved[0])
    StrategyRegistry._broken.clear()
    StrategyRegistry._broken.update(saved[1])


class EchoStrategy(ExecutionStrategy):
    name = "core_test_echo"

    def get_execution_modes(self) -> list[ExecutionMode]:
        return [ExecutionMode.PREFILL, ExecutionMode.DECODE]


def test_built_ins_are_registered() -> None:
    for name, cls in BUILT_IN.items():
        assert StrategyRegistry.get_class(name) is cls
        strategy = StrategyRegistry.get(name)
        assert type(strategy) is cls and strategy.name == name
        assert StrategyRegistry.get(name) is not strategy  # a new instance each time
    names = StrategyRegistry.names()
    assert set(BUILT_IN) <= set(names) and list(names) == sorted(names)


def test_register_get_and_unregister(registry) -> None:
    assert registry.register("core_test_echo", EchoStrategy) is EchoStrategy
    strategy = registry.get("core_test_echo", variants={"decode": "alt"}, note="kept")
    assert isinstance(strategy, EchoStrategy)
    assert strategy.options == {"note": "kept"}
    assert strategy.variants == {ExecutionMode.DECODE: "alt"}
    assert "core_test_echo" in registry.names()
    registry.unregister("core_test_echo")
    assert "core_test_echo" not in registry.names()


def test_unknown_name_lists_what_is_registered() -> None:
    with pytest.raises(UnknownNameError) as info:
        StrategyRegistry.get("prefil_decode")
    message = str(info.value)
    assert "'prefil_decode'" in message
    for name in BUILT_IN:
        assert name in message
    assert isinstance(info.value, LookupError)


def test_register_rejects_non_strategies(registry) -> None:
    for bad in (object, EchoStrategy(), "prefill_decode", None):
        with pytest.raises(TypeError):
            registry.register("core_test_bad", bad)
    assert "core_test_bad" not in registry.names()


@pytest.mark.parametrize("bad", [3, None, "", ("core_test_echo",)])
def test_register_requires_a_non_empty_string_name(registry, bad) -> None:
    with pytest.raises(SpecError) as info:
        registry.register(bad, EchoStrategy)
    assert info.value.field == "name" and "non-empty str" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert all(isinstance(n, str) for n in registry._strategies)
    registry.names()  # still sortable
    with pytest.raises(UnknownNameError, match="registered: "):
        registry.get("core_test_nope")


PLUGIN_MODULE = """
    from tttv2.core import ExecutionMode, ExecutionStrategy

    class PluginStrategy(ExecutionStrategy):
        name = "core_test_plugin"

        def get_execution_modes(self):
            return [ExecutionMode.PREFILL, ExecutionMode.DECODE]

    class NotAStrategy:
        pass
"""

ENTRY_POINTS = """
    [tttv2.strategies]
    core_test_plugin = core_test_plugin_strategies:PluginStrategy
    core_test_missing = core_test_plugin_missing_module:Nope
    core_test_not_a_strategy = core_test_plugin_strategies:NotAStrategy
"""


def make_distribution(root: Path) -> None:
    """An installed distribution as importlib.metadata sees it: a dist-info folder with
    METADATA and entry_points.txt, plus the module it points at."""
    dist = root / "core_test_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: core-test-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent(ENTRY_POINTS))
    (root / "core_test_plugin_strategies.py").write_text(textwrap.dedent(PLUGIN_MODULE))


def test_entry_point_discovery(registry, tmp_path, monkeypatch) -> None:
    make_distribution(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "core_test_plugin_strategies", raising=False)
    assert "core_test_plugin" not in registry.names()

    with pytest.warns(RuntimeWarning) as record:
        registry.load_entry_points(force=True)
    warned = " ".join(str(w.message) for w in record)
    assert "core_test_missing" in warned and "core_test_not_a_strategy" in warned

    # the broken plugins do not hide the good one
    strategy = registry.get("core_test_plugin")
    assert type(strategy).__name__ == "PluginStrategy"
    assert type(strategy).__module__ == "core_test_plugin_strategies"
    assert "core_test_plugin" in registry.names()
    module = ToyLeaf(ToySpec(4), execution_strategy="core_test_plugin")
    assert module.supported_modes() == (ExecutionMode.PREFILL, ExecutionMode.DECODE)

    # asking for a broken one says why it is missing
    with pytest.raises(StrategyError, match="core_test_plugin_missing_module"):
        registry.get("core_test_missing")
    with pytest.raises(StrategyError, match="not an ExecutionStrategy"):
        registry.get("core_test_not_a_strategy")
    monkeypatch.delitem(sys.modules, "core_test_plugin_strategies", raising=False)


CORE_SRC = Path(__import__("tttv2.core", fromlist=["x"]).__file__).parent


def test_core_imports_no_blocks_or_models() -> None:
    """Strategies and the module base only look implementations up; blocks register them."""
    offenders = []
    for path in sorted(CORE_SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[:2] in (
                    ["tttv2", "blocks"],
                    ["tttv2", "hw"],
                    ["tttv2", "testing"],
                ) or name.startswith("models"):
                    offenders.append(f"{path.relative_to(CORE_SRC)}: {name}")
    assert offenders == []
