"""Execution strategies: *how* a module runs, separate from *what* it computes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from tttv2.core.errors import ModeNotSupportedError, SpecError
from tttv2.core.implementations import Implementation, build_implementation, implementations_for
from tttv2.core.modes import ExecutionMode
from tttv2.core.specs.base import ModuleSpec


class ExecutionStrategy(ABC):
    """Decides which execution modes a module gets and which implementation runs each.

    Options given to the constructor are kept in ``self.options`` (JSON-safe values) so a
    strategy can be named in configuration files. ``variants`` maps a mode name to the
    implementation variant to use (default ``"default"``).

    ``accepted_options`` names the options a strategy takes (besides ``variants``); any
    other option raises a :class:`SpecError` naming it and the valid ones, so a typo in a
    configuration file fails instead of being ignored. ``None`` accepts any option. The
    declaration is not inherited: a subclass that declares none accepts anything, as
    strategies written before the attribute existed did.
    """

    name: ClassVar[str] = ""
    accepted_options: ClassVar[frozenset[str] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "accepted_options" not in cls.__dict__:
            cls.accepted_options = None
        elif cls.accepted_options is not None:
            cls.accepted_options = frozenset(cls.accepted_options)

    def __init__(self, variants: Mapping[str, str] | None = None, **options: Any) -> None:
        accepted = type(self).accepted_options
        if accepted is not None:
            for option in sorted(set(options) - accepted):
                valid = ", ".join(sorted({*accepted, "variants"}))
                raise SpecError(
                    type(self).__name__, option, options[option], f"a known option: {valid}"
                )
        self.variants = {ExecutionMode(k): v for k, v in (variants or {}).items()}
        self.options = options

    @abstractmethod
    def get_execution_modes(self) -> list[ExecutionMode]:
        """Which execution modes this strategy supports."""

    def specialize_module(
        self, module_spec: ModuleSpec, device: Any
    ) -> dict[ExecutionMode, Implementation]:
        """One implementation per supported mode, built from the implementation registry.

        Modes a spec kind has no implementation for are left out only when the strategy
        marks them optional (:meth:`optional_modes`); otherwise a StrategyError names them.
        """
        impls: dict[ExecutionMode, Implementation] = {}
        for mode in self.get_execution_modes():
            if mode in self.optional_modes() and not implementations_for(type(module_spec), mode):
                continue
            impls[mode] = build_implementation(
                module_spec, mode, device, self.variants.get(mode, "default")
            )
        return impls

    def optional_modes(self) -> frozenset[ExecutionMode]:
        """Modes a module may lack without the strategy failing (default: none)."""
        return frozenset()

    def resolve_mode(self, mode: ExecutionMode) -> ExecutionMode:
        """Map a requested mode onto the mode whose implementation serves it."""
        return mode

    def select_implementation(
        self, mode: ExecutionMode | str, implementations: Mapping[ExecutionMode, Implementation]
    ) -> Implementation:
        """The implementation to run for ``mode`` among a module's ``implementations``."""
        wanted = self.resolve_mode(ExecutionMode(mode))
        try:
            return implementations[wanted]
        except KeyError:
            have = ", ".join(m.value for m in implementations) or "none"
            raise ModeNotSupportedError(
                f"mode {ExecutionMode(mode).value!r} is not supported by strategy "
                f"{self.name or type(self).__name__!r} (supported: {have})"
            ) from None

    def supports(self, mode: ExecutionMode | str) -> bool:
        return self.resolve_mode(ExecutionMode(mode)) in self.get_execution_modes()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options or ''})"
