"""Configuration-driven module creation (from Python, JSON or TOML)."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tttv2.core.errors import SpecError
from tttv2.core.module_classes import module_class_for
from tttv2.core.registry import StrategyRegistry
from tttv2.core.specs.base import ModuleSpec


@dataclass(frozen=True)
class ModuleConfig:
    """A spec plus where and how to run it.

    ``execution_strategy`` is a registered strategy name; ``strategy_config`` holds its
    constructor options (a strategy that declares its options rejects others when
    :func:`create_module` builds it). ``device`` is a device name (a ``torch.device`` is
    stored as its name)."""

    spec: ModuleSpec
    device: str = "cpu"
    execution_strategy: str = "prefill_decode"
    strategy_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.spec, ModuleSpec):
            raise SpecError("ModuleConfig", "spec", self.spec, "a ModuleSpec instance")
        if isinstance(self.device, torch.device):
            object.__setattr__(self, "device", str(self.device))
        if not isinstance(self.device, str) or not self.device:
            raise SpecError(
                "ModuleConfig", "device", self.device, "a device name such as 'cpu' or 'cuda:0'"
            )
        if not isinstance(self.execution_strategy, str) or not self.execution_strategy:
            raise SpecError(
                "ModuleConfig",
                "execution_strategy",
                self.execution_strategy,
                "a registered strategy name",
            )
        StrategyRegistry.get_class(self.execution_strategy)  # unknown names fail here
        if self.strategy_config is None:
            object.__setattr__(self, "strategy_config", {})
        if not isinstance(self.strategy_config, Mapping):
            raise SpecError(
                "ModuleConfig",
                "strategy_config",
                self.strategy_config,
                "a table of strategy options by name",
            )
        for key in self.strategy_config:
            if not isinstance(key, str):
                raise SpecError(
                    "ModuleConfig",
                    "strategy_config",
                    self.strategy_config,
                    "option names that are strings",
                )

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "device": self.device,
            "execution_strategy": self.execution_strategy,
            "strategy_config": dict(self.strategy_config),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModuleConfig:
        data = dict(data)
        if "spec" not in data:
            raise SpecError("ModuleConfig", "spec", None, "a spec table with a 'kind' key")
        unknown = sorted(set(data) - {"spec", "device", "execution_strategy", "strategy_config"})
        if unknown:
            raise SpecError(
                "ModuleConfig",
                unknown[0],
                data[unknown[0]],
                "spec, device, execution_strategy, strategy_config",
            )
        data["spec"] = ModuleSpec.from_dict(data["spec"])
        return cls(**data)

    @classmethod
    def from_file(cls, path: str | Path) -> ModuleConfig:
        """Read a ``.json`` or ``.toml`` file holding :meth:`to_dict` data."""
        path = Path(path)
        text = path.read_text()
        if path.suffix == ".toml":
            return cls.from_dict(tomllib.loads(text))
        if path.suffix == ".json":
            return cls.from_dict(json.loads(text))
        raise ValueError(f"{path}: unsupported config format {path.suffix!r}; use .json or .toml")


def create_module(config: ModuleConfig) -> Any:
    """Build the module for ``config.spec`` with the configured strategy."""
    strategy = StrategyRegistry.get(config.execution_strategy, **config.strategy_config)
    module_class = module_class_for(type(config.spec))
    return module_class(config.spec, device=config.device, execution_strategy=strategy)
