"""Where blocks register how they run in each execution mode.

Core never imports a concrete block: blocks call :func:`register_implementation` (or the
:func:`implements` decorator) for ``(spec class, mode)``; strategies look candidates up
here and choose among them. An implementation is a callable class constructed as
``impl(spec, device)`` whose ``forward(module, *args, **kwargs)`` computes with the
weights the *module* owns, so weights exist once however many modes there are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from tttv2.core.errors import StrategyError
from tttv2.core.modes import ExecutionMode
from tttv2.core.specs.base import ModuleSpec


class Implementation(Protocol):
    """How one module runs in one mode. Holds no weights."""

    def forward(self, module: Any, *args: Any, **kwargs: Any) -> Any: ...


ImplementationFactory = Callable[[ModuleSpec, Any], Implementation]
F = TypeVar("F", bound=ImplementationFactory)

_IMPLEMENTATIONS: dict[
    tuple[type[ModuleSpec], ExecutionMode], dict[str, ImplementationFactory]
] = {}


def register_implementation(
    spec_type: type[ModuleSpec],
    mode: ExecutionMode | str,
    factory: ImplementationFactory,
    *,
    variant: str = "default",
) -> None:
    """Declare that ``factory(spec, device)`` runs ``spec_type`` modules in ``mode``.

    ``variant`` lets several implementations of one mode coexist (e.g. ``"paged"`` and
    ``"contiguous"`` decode); a strategy picks one by name."""
    _IMPLEMENTATIONS.setdefault((spec_type, ExecutionMode(mode)), {})[variant] = factory


def implements(
    spec_type: type[ModuleSpec], *modes: ExecutionMode | str, variant: str = "default"
) -> Callable[[F], F]:
    """Class decorator form of :func:`register_implementation` for one or more modes."""

    def wrap(factory: F) -> F:
        for mode in modes:
            register_implementation(spec_type, mode, factory, variant=variant)
        return factory

    return wrap


def implementations_for(
    spec_type: type[ModuleSpec], mode: ExecutionMode | str
) -> dict[str, ImplementationFactory]:
    """Registered variants for ``(spec_type, mode)``, searching the spec's base classes."""
    mode = ExecutionMode(mode)
    for cls in spec_type.__mro__:
        found = _IMPLEMENTATIONS.get((cls, mode))
        if found:
            return dict(found)
    return {}


def registered_modes(spec_type: type[ModuleSpec]) -> tuple[ExecutionMode, ...]:
    """Modes some block registered an implementation of ``spec_type`` for."""
    return tuple(m for m in ExecutionMode.all() if implementations_for(spec_type, m))


def build_implementation(
    spec: ModuleSpec, mode: ExecutionMode, device: Any, variant: str = "default"
) -> Implementation:
    """Construct the registered implementation, or explain what is registered instead."""
    candidates = implementations_for(type(spec), mode)
    if not candidates:
        have = ", ".join(m.value for m in registered_modes(type(spec))) or "none"
        raise StrategyError(
            f"no implementation of {type(spec).__name__} for mode {mode.value!r} is registered "
            f"(registered modes: {have}); is the package providing it imported?"
        )
    if variant not in candidates:
        raise StrategyError(
            f"{type(spec).__name__} in mode {mode.value!r} has no variant {variant!r}; "
            f"registered: {', '.join(sorted(candidates))}"
        )
    return candidates[variant](spec, device)
