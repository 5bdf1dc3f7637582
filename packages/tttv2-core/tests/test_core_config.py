"""ModuleConfig and create_module: from Python, JSON and TOML files."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from core_toys import PrefillDecodeSpec, ToyLeaf, ToySpec, assert_close, reference

from tttv2.core import (
    AttentionSpec,
    ExecutionMode,
    ModuleConfig,
    MultiModeStrategy,
    RopeSpec,
    RuntimeContext,
    SpecError,
    UnknownNameError,
    create_module,
)
from tttv2.core.module_classes import module_class_for


def test_create_module_from_python() -> None:
    config = ModuleConfig(spec=ToySpec(8))
    assert (config.device, config.execution_strategy, config.strategy_config) == (
        "cpu",
        "prefill_decode",
        {},
    )
    module = create_module(config)
    assert type(module) is ToyLeaf and module.spec == ToySpec(8)
    assert module.device == torch.device("cpu")
    assert module.supported_modes() == (ExecutionMode.PREFILL, ExecutionMode.DECODE)
    x = torch.randn(2, 8)
    assert_close(module.decode_forward(x), reference(module, x))


def test_create_module_from_json_file(tmp_path) -> None:
    config = ModuleConfig(
        ToySpec(4), execution_strategy="multi_mode", strategy_config={"chunk_size": 128}
    )
    path = tmp_path / "toy.json"
    path.write_text(json.dumps(config.to_dict()))
    loaded = ModuleConfig.from_file(path)
    assert loaded == config
    module = create_module(loaded)
    assert isinstance(module.execution_strategy, MultiModeStrategy)
    assert module.execution_strategy.chunk_size == 128
    module.set_mode("long_context")
    module(torch.ones(1, 4))
    assert module.last_ran == "long_context"


def test_create_module_from_toml_file(tmp_path) -> None:
    path = tmp_path / "toy.toml"
    path.write_text(
        textwrap.dedent("""
        device = "cpu"
        execution_strategy = "dynamic"

        [spec]
        kind = "core_test_toy"
        dim = 6

        [strategy_config]
        default = "prefill_decode"

        [[strategy_config.rules]]
        strategy = "unified"
        when = { max_batch_size = 1, latency_critical = true }
    """)
    )
    module = create_module(ModuleConfig.from_file(path))
    assert module.spec == ToySpec(6) and module.execution_strategy.name == "dynamic"
    module.set_mode("decode", context=RuntimeContext(batch_size=1, latency_critical=True))
    module(torch.ones(1, 6))
    assert module.last_ran == "unified"


def test_toml_spec_with_nested_specs_and_derived_fields(tmp_path) -> None:
    """A real spec written by hand: None fields are simply left out, nested single-kind
    specs need no kind key."""
    path = tmp_path / "attention.toml"
    path.write_text(
        textwrap.dedent("""
        execution_strategy = "unified"

        [spec]
        kind = "attention"
        hidden_dim = 256
        num_heads = 8
        num_kv_heads = 2
        sliding_window = 512

        [spec.rope]
        head_dim = 32
        theta = 500000.0
        scaling = "llama3"
        factor = 8.0
        original_max_position = 8192
        low_freq_factor = 1.0
        high_freq_factor = 4.0
    """)
    )
    config = ModuleConfig.from_file(path)
    assert config.spec == AttentionSpec(
        hidden_dim=256,
        num_heads=8,
        num_kv_heads=2,
        sliding_window=512,
        rope=RopeSpec(
            head_dim=32,
            theta=500000.0,
            scaling="llama3",
            factor=8.0,
            original_max_position=8192,
            low_freq_factor=1.0,
            high_freq_factor=4.0,
        ),
    )
    assert config.spec.head_dim == 32
    assert ModuleConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_config_errors_are_clear(tmp_path) -> None:
    with pytest.raises(UnknownNameError, match="'fast'.*registered: .*prefill_decode"):
        ModuleConfig(ToySpec(4), execution_strategy="fast")
    with pytest.raises(SpecError, match="ModuleConfig.spec"):
        ModuleConfig({"kind": "core_test_toy", "dim": 4})  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="ModuleConfig.strategy="):
        ModuleConfig.from_dict({"spec": ToySpec(4).to_dict(), "strategy": "unified"})
    with pytest.raises(SpecError, match="ModuleConfig.spec"):
        ModuleConfig.from_dict({"device": "cpu"})
    with pytest.raises(SpecError, match="ToySpec.dim=0"):
        ModuleConfig.from_dict({"spec": {"kind": "core_test_toy", "dim": 0}})
    bad = tmp_path / "config.yaml"
    bad.write_text("spec: {}")
    with pytest.raises(ValueError, match="use .json or .toml"):
        ModuleConfig.from_file(bad)
    assert ModuleConfig(ToySpec(4), strategy_config=None).strategy_config == {}  # type: ignore[arg-type]


def test_module_class_lookup() -> None:
    assert module_class_for(ToySpec) is ToyLeaf
    assert module_class_for(PrefillDecodeSpec) is ToyLeaf


@pytest.mark.parametrize("bad", [["chunk_size", 64], "chunk_size=64", 5, {3: "x"}])
def test_strategy_config_must_be_a_table_of_named_options(bad) -> None:
    with pytest.raises(SpecError) as info:
        ModuleConfig(ToySpec(4), execution_strategy="multi_mode", strategy_config=bad)
    assert info.value.field == "strategy_config" and str(info.value).startswith(
        "ModuleConfig.strategy_config="
    )
    with pytest.raises(SpecError, match="ModuleConfig.strategy_config="):
        ModuleConfig.from_dict({"spec": ToySpec(4).to_dict(), "strategy_config": bad})


@pytest.mark.parametrize("bad", [5, None, "", ["cpu"], 1.0])
def test_device_must_be_a_device_name(bad) -> None:
    with pytest.raises(SpecError) as info:
        ModuleConfig(ToySpec(4), device=bad)
    assert info.value.field == "device" and "'cpu'" in info.value.expected
    with pytest.raises(SpecError, match="ModuleConfig.device="):
        ModuleConfig.from_dict({"spec": ToySpec(4).to_dict(), "device": bad})


def test_device_and_strategy_name_types() -> None:
    config = ModuleConfig(ToySpec(4), device=torch.device("cpu"))  # type: ignore[arg-type]
    assert config.device == "cpu" and config.to_dict()["device"] == "cpu"
    for bad in (None, 3, ["unified"]):
        with pytest.raises(SpecError, match="ModuleConfig.execution_strategy="):
            ModuleConfig(ToySpec(4), execution_strategy=bad)  # type: ignore[arg-type]
