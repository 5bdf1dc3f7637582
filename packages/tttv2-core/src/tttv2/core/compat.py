"""Migration aid: the old ``forward(x, mode='prefill')`` calling convention."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

from tttv2.core.modes import ExecutionMode


class LegacyModeCall:
    """Mixin for a :class:`~tttv2.core.module.BaseModule` subclass that accepts the
    pre-strategy calling style ``module(x, mode="prefill")``. A mode string switches the
    mode first; without one the current mode (prefill if none) is used, so new-style
    callers (``set_mode()``, ``decode_forward()``) keep working on the same class. The
    first ``mode=`` call per class warns with a ``DeprecationWarning`` pointing at the
    caller and naming the new API."""

    _legacy_warned: bool = False

    def forward(self, *args: Any, mode: str | ExecutionMode | None = None, **kwargs: Any) -> Any:
        if mode is not None:
            cls = type(self)
            if not cls.__dict__.get("_legacy_warned", False):
                cls._legacy_warned = True
                warnings.warn(
                    f"{cls.__name__}(x, mode=...) is the legacy call style; use set_mode() with "
                    "forward(), or prefill_forward()/decode_forward()",
                    DeprecationWarning,
                    stacklevel=_caller_stacklevel(),
                )
            wanted = ExecutionMode(mode)
            if self.current_mode is not wanted:  # type: ignore[attr-defined]
                self.set_mode(wanted)  # type: ignore[attr-defined]
        elif self.current_mode is None:  # type: ignore[attr-defined]
            self.set_mode(ExecutionMode.PREFILL)  # type: ignore[attr-defined]
        return super().forward(*args, **kwargs)  # type: ignore[misc]


def _caller_stacklevel() -> int:
    """``stacklevel`` for a warning issued in ``forward`` that points at the user's call,
    skipping torch's ``Module.__call__`` machinery and this file."""
    here = inspect.currentframe()  # this helper; 1: its caller (forward)
    level, frame = 2, here.f_back.f_back if here is not None and here.f_back is not None else None
    while frame is not None and (
        frame.f_code.co_filename == __file__
        or frame.f_globals.get("__name__", "").startswith("torch.nn.modules")
    ):
        level, frame = level + 1, frame.f_back
    return level
