"""Toy specs, implementations and modules for the tttv2-core tests (no tttv2.blocks).

``ToySpec`` means ``y = x @ W^T + b`` with ``W: [dim, dim]``. Every registered
implementation computes exactly that with the *module's* weights and records on the module
which mode ran (``module.last_ran``), so tests can check dispatch against the reference
``reference(module, x)``. ``PrefillDecodeSpec`` has implementations for prefill and decode
only, like a block whose math does not depend on the mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tttv2.core import (
    BaseModule,
    ExecutionMode,
    ModuleSpec,
    register_implementation,
    register_module_class,
)


@dataclass(frozen=True)
class ToySpec(ModuleSpec):
    kind = "core_test_toy"

    dim: int

    def validate(self) -> None:
        self._positive("dim")


@dataclass(frozen=True)
class PrefillDecodeSpec(ModuleSpec):
    kind = "core_test_prefill_decode"

    dim: int

    def validate(self) -> None:
        self._positive("dim")


class ToyImpl:
    """Runs one mode; holds no tensors (weights live on the module)."""

    ran = ""

    def __init__(self, spec: ModuleSpec, device: object) -> None:
        self.spec = spec
        self.device = device

    def forward(self, module: ToyLeaf, x: torch.Tensor) -> torch.Tensor:
        module.last_ran = self.ran
        return torch.nn.functional.linear(x, module.weight, module.bias)


def _impl(ran: str) -> type[ToyImpl]:
    return type(f"ToyImpl_{ran}", (ToyImpl,), {"ran": ran})


MODES = ("prefill", "decode", "unified", "long_context", "speculative", "continuous_batch")
for _mode in MODES:
    register_implementation(ToySpec, _mode, _impl(_mode))
register_implementation(ToySpec, "decode", _impl("decode/alt"), variant="alt")
for _mode in ("prefill", "decode"):
    register_implementation(PrefillDecodeSpec, _mode, _impl(_mode))


class ToyLeaf(BaseModule):
    """A specialised (leaf) module: forward is the active implementation."""

    def __init__(self, spec: ModuleSpec, device=None, execution_strategy=None) -> None:
        super().__init__(spec, device, execution_strategy)
        g = torch.Generator().manual_seed(spec.dim)
        self.weight = torch.nn.Parameter(torch.randn(spec.dim, spec.dim, generator=g))
        self.bias = torch.nn.Parameter(torch.randn(spec.dim, generator=g))
        self.last_ran = ""


class ToyBlock(BaseModule):
    """A composite module: two leaves around a plain torch layer."""

    specialized = False

    def __init__(self, spec: ModuleSpec, device=None, execution_strategy=None) -> None:
        super().__init__(spec, device, execution_strategy)
        self.first = ToyLeaf(spec, device, self.execution_strategy)
        self.act = torch.nn.Tanh()
        self.second = ToyLeaf(spec, device, self.execution_strategy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.act(self.first(x)))


class ToyStack(BaseModule):
    """Composite of composites, like a transformer stack of decoder layers."""

    specialized = False

    def __init__(
        self, spec: ModuleSpec, device=None, execution_strategy=None, depth: int = 2
    ) -> None:
        super().__init__(spec, device, execution_strategy)
        self.blocks = torch.nn.ModuleList(
            ToyBlock(spec, device, self.execution_strategy) for _ in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


register_module_class(ToySpec, ToyLeaf)
register_module_class(PrefillDecodeSpec, ToyLeaf)


def reference(leaf: ToyLeaf, x: torch.Tensor) -> torch.Tensor:
    """``x @ W^T + b`` written out, independent of the implementations."""
    return x @ leaf.weight.detach().T + leaf.bias.detach()


def leaves(module: torch.nn.Module) -> list[ToyLeaf]:
    return [m for m in module.modules() if isinstance(m, ToyLeaf)]


def mode(name: str) -> ExecutionMode:
    return ExecutionMode(name)


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """fp32 comparison (cheaper to import than torch.testing)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert torch.allclose(actual, expected, rtol=1e-5, atol=1e-6), (
        (actual - expected).abs().max().item()
    )
