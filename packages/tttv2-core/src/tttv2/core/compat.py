"""Migration aid: the old ``forward(x, mode='prefill')`` calling convention."""

from __future__ import annotations

import warnings
from typing import Any

from tttv2.core.modes import ExecutionMode


class LegacyModeCall:
    """Mixin for a :class:`~tttv2.core.module.BaseModule` subclass that accepts the
    pre-strategy calling style ``module(x, mode="prefill")``. A mode string switches the
    mode first; without one the current mode (prefill if none) is used. The shim warns
    once per class with a ``DeprecationWarning`` pointing at the new API."""

    _legacy_warned: bool = False

    def forward(self, *args: Any, mode: str | ExecutionMode | None = None, **kwargs: Any) -> Any:
        cls = type(self)
        if not cls._legacy_warned:
            cls._legacy_warned = True
            warnings.warn(
                f"{cls.__name__}(x, mode=...) is the legacy call style; use set_mode() with "
                "forward(), or prefill_forward()/decode_forward()",
                DeprecationWarning,
                stacklevel=3,
            )
        if mode is not None:
            wanted = ExecutionMode(mode)
            if self.current_mode is not wanted:  # type: ignore[attr-defined]
                self.set_mode(wanted)  # type: ignore[attr-defined]
        elif self.current_mode is None:  # type: ignore[attr-defined]
            self.set_mode(ExecutionMode.PREFILL)  # type: ignore[attr-defined]
        return super().forward(*args, **kwargs)  # type: ignore[misc]
