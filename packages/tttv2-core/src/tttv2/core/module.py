"""BaseModule: a torch module whose forward is chosen by an execution strategy."""

from __future__ import annotations

from typing import Any

import torch

from tttv2.core.context import RuntimeContext
from tttv2.core.errors import ModeNotSupportedError, StrategyError
from tttv2.core.implementations import Implementation
from tttv2.core.modes import ExecutionMode
from tttv2.core.specs.base import ModuleSpec
from tttv2.core.strategy import ExecutionStrategy


def resolve_strategy(strategy: ExecutionStrategy | str | None) -> ExecutionStrategy:
    """An instance for a strategy, a registered name, or ``None`` (the default)."""
    from tttv2.core.registry import StrategyRegistry
    from tttv2.core.strategies import DEFAULT_STRATEGY

    if strategy is None:
        return StrategyRegistry.get(DEFAULT_STRATEGY)
    if isinstance(strategy, str):
        return StrategyRegistry.get(strategy)
    if isinstance(strategy, ExecutionStrategy):
        return strategy
    raise TypeError(f"execution_strategy must be an ExecutionStrategy or a name, got {strategy!r}")


class BaseModule(torch.nn.Module):
    """A block with a spec and an execution strategy.

    *Leaf* modules (``specialized = True``, e.g. attention) get one implementation per
    mode from the strategy; ``forward`` calls the one selected by :meth:`set_mode`.
    Implementations receive the module and read its parameters, so weights are stored
    once whatever the number of modes, and switching mode only rebinds a reference.

    *Composite* modules (``specialized = False``, e.g. a decoder layer) write ``forward``
    themselves; :meth:`set_mode` propagates to every BaseModule inside them.

    Modules start in PREFILL when their strategy serves it (``current_mode`` is ``None``
    otherwise, until :meth:`set_mode`).
    """

    specialized: bool = True

    def __init__(
        self,
        spec: ModuleSpec,
        device: torch.device | str | None = None,
        execution_strategy: ExecutionStrategy | str | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.execution_strategy = resolve_strategy(execution_strategy)
        self.implementations: dict[ExecutionMode, Implementation] = {}
        self.current_mode: ExecutionMode | None = None
        self._active: Implementation | None = None
        if self.specialized:
            self.implementations = self._specialize(self.execution_strategy)
            try:  # start in PREFILL (the seed's default) when the strategy serves it
                self._active = self.execution_strategy.select_implementation(
                    ExecutionMode.PREFILL, self.implementations
                )
                self.current_mode = ExecutionMode.PREFILL
            except ModeNotSupportedError:
                pass
        elif self.execution_strategy.supports(ExecutionMode.PREFILL):
            self.current_mode = (
                ExecutionMode.PREFILL
            )  # its leaves, built with this strategy, do too

    # -- strategy handling ------------------------------------------------------------
    @property
    def active_implementation(self) -> Implementation | None:
        """The implementation ``forward`` runs in the current mode (None: no mode selected,
        or a composite module that runs its children)."""
        return self._active

    def _specialize(self, strategy: ExecutionStrategy) -> dict[ExecutionMode, Implementation]:
        impls = strategy.specialize_module(self.spec, self.device)
        required = [m for m in strategy.get_execution_modes() if m not in strategy.optional_modes()]
        missing = [m.value for m in required if m not in impls]
        if missing:
            raise StrategyError(
                f"strategy {strategy.name or type(strategy).__name__!r} claims modes "
                f"{[m.value for m in required]} but gave no implementation of "
                f"{type(self.spec).__name__} for {missing}"
            )
        for mode, impl in impls.items():
            if not callable(getattr(impl, "forward", None)):
                raise StrategyError(
                    f"implementation for mode {mode.value!r} has no forward(): {impl!r}"
                )
        return impls

    def _mode_children(self) -> list[BaseModule]:
        return [m for m in self.modules() if isinstance(m, BaseModule) and m is not self]

    def supported_modes(self) -> tuple[ExecutionMode, ...]:
        """Modes this module (and every BaseModule in it) can run in."""
        strategy = self.execution_strategy
        modes = [m for m in ExecutionMode.all() if strategy.supports(m)]
        if self.specialized:
            modes = [m for m in modes if self._selects(strategy, m)]
        for child in self._mode_children():
            if child.specialized:
                child_modes = child.supported_modes()
                modes = [m for m in modes if m in child_modes]
        return tuple(modes)

    def _selects(self, strategy: ExecutionStrategy, mode: ExecutionMode) -> bool:
        try:
            strategy.select_implementation(mode, self.implementations)
        except ModeNotSupportedError:
            return False
        return True

    def set_mode(self, mode: ExecutionMode | str, context: RuntimeContext | None = None) -> None:
        """Switch this module and every BaseModule inside it to ``mode``.

        With ``context``, strategies that select dynamically see it first. All or nothing:
        when some module cannot run ``mode``, :class:`ModeNotSupportedError` names it and
        no module changes mode. Allocates nothing and touches no weights."""
        mode = ExecutionMode(mode)
        members = [
            ("", self),
            *(
                (n, m)
                for n, m in self.named_modules()
                if isinstance(m, BaseModule) and m is not self
            ),
        ]
        if context is not None:
            for _, m in members:
                update = getattr(m.execution_strategy, "update_context", None)
                if update is not None:
                    update(context)
        chosen: list[tuple[BaseModule, Implementation | None]] = []
        for name, m in members:
            if not m.specialized:
                chosen.append((m, None))
                continue
            try:
                chosen.append(
                    (m, m.execution_strategy.select_implementation(mode, m.implementations))
                )
            except ModeNotSupportedError as exc:
                where = f" ({name})" if name else ""
                raise ModeNotSupportedError(f"{type(m).__name__}{where}: {exc}") from None
        for m, impl in chosen:
            m._active = impl
            m.current_mode = mode

    def switch_strategy(self, strategy: ExecutionStrategy | str) -> None:
        """Replace the execution strategy here and in every BaseModule inside, at run
        time, keeping the weights. Each module keeps its mode when the new strategy
        serves it (otherwise it has no mode until :meth:`set_mode`). All or nothing: when
        the new strategy cannot specialise some module, nothing changes."""
        new = resolve_strategy(strategy)
        members = [self, *self._mode_children()]
        impls = [m._specialize(new) if m.specialized else {} for m in members]
        previous = [m.current_mode for m in members]
        for m, m_impls in zip(members, impls, strict=True):
            m.execution_strategy = new
            m.implementations = m_impls
            m._active = None
            m.current_mode = None
        for m, mode in zip(members, previous, strict=True):
            if mode is None:
                continue
            if m.specialized:
                try:
                    m._active = new.select_implementation(mode, m.implementations)
                except ModeNotSupportedError:
                    continue
            elif not new.supports(mode):
                continue
            m.current_mode = mode

    # -- calling ----------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the implementation of the current mode (leaf modules)."""
        impl = self._active
        if impl is None:
            raise ModeNotSupportedError(
                f"{type(self).__name__} has no mode selected; call set_mode() or use "
                "prefill_forward()/decode_forward()"
            )
        return impl.forward(self, *args, **kwargs)

    def run_in_mode(self, mode: ExecutionMode | str, *args: Any, **kwargs: Any) -> Any:
        """``set_mode(mode)`` then ``forward(...)``."""
        mode = ExecutionMode(mode)
        if self.current_mode is not mode:
            self.set_mode(mode)
        return self(*args, **kwargs)

    def prefill_forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.run_in_mode(ExecutionMode.PREFILL, *args, **kwargs)

    def decode_forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.run_in_mode(ExecutionMode.DECODE, *args, **kwargs)

    def extra_repr(self) -> str:
        mode = self.current_mode.value if self.current_mode else None
        return f"strategy={self.execution_strategy.name!r}, mode={mode!r}"
