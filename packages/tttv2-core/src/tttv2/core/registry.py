"""StrategyRegistry: execution strategies by name, including third-party ones found
through the ``tttv2.strategies`` entry-point group."""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from typing import Any, ClassVar

from tttv2.core.errors import SpecError, StrategyError, UnknownNameError
from tttv2.core.strategy import ExecutionStrategy

ENTRY_POINT_GROUP = "tttv2.strategies"


class StrategyRegistry:
    """Global name -> strategy class map. Built-ins register on import of ``tttv2.core``;
    installed packages add theirs with an entry point::

        [project.entry-points."tttv2.strategies"]
        my_strategy = "my_pkg.strategies:MyStrategy"
    """

    _strategies: ClassVar[dict[str, type[ExecutionStrategy]]] = {}
    _entry_points_loaded: ClassVar[bool] = False
    _broken: ClassVar[dict[str, str]] = {}  # entry-point name -> why it failed to load

    @classmethod
    def register(
        cls, name: str, strategy_class: type[ExecutionStrategy]
    ) -> type[ExecutionStrategy]:
        """Register ``strategy_class`` under ``name`` (replacing any earlier one).

        ``name`` must be a non-empty string (:class:`SpecError` otherwise)."""
        if not isinstance(name, str) or not name:
            raise SpecError("StrategyRegistry.register", "name", name, "a non-empty str")
        if not (isinstance(strategy_class, type) and issubclass(strategy_class, ExecutionStrategy)):
            raise TypeError(f"{strategy_class!r} is not an ExecutionStrategy subclass")
        cls._strategies[name] = strategy_class
        return strategy_class

    @classmethod
    def unregister(cls, name: str) -> None:
        cls._strategies.pop(name, None)

    @classmethod
    def get_class(cls, name: str) -> type[ExecutionStrategy]:
        cls.load_entry_points()
        try:
            return cls._strategies[name]
        except KeyError:
            if name in cls._broken:
                raise StrategyError(cls._broken[name]) from None
            raise UnknownNameError("execution strategy", name, cls._strategies) from None

    @classmethod
    def get(cls, name: str, **options: Any) -> ExecutionStrategy:
        """A new instance of the strategy registered as ``name``."""
        return cls.get_class(name)(**options)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        cls.load_entry_points()
        return tuple(sorted(cls._strategies))

    @classmethod
    def load_entry_points(cls, force: bool = False) -> None:
        """Import strategies advertised by installed distributions (once; ``force`` looks
        again, e.g. after installing a plugin). A plugin that fails to load is reported
        with a warning and does not hide the others; asking for it by name raises a
        :class:`StrategyError` with the reason."""
        if cls._entry_points_loaded and not force:
            return
        cls._entry_points_loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = ep.load()
                cls.register(ep.name, loaded)
            except Exception as exc:
                why = f"strategy entry point {ep.name!r} ({ep.value}) failed to load: {exc}"
                cls._broken[ep.name] = why
                warnings.warn(why, RuntimeWarning, stacklevel=2)
            else:
                cls._broken.pop(ep.name, None)
