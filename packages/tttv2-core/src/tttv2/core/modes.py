"""Execution modes: the context a module runs in (prefill, decode, ...).

``ExecutionMode`` behaves like an enum (``ExecutionMode.PREFILL``, ``.value``, identity
comparison) but is open: a third party adds a mode with ``ExecutionMode.register("name")``
without editing the library.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from tttv2.core.errors import UnknownNameError


class _ModeType(type):
    """Lets the class be used like an ``Enum`` class: ``for m in ExecutionMode``,
    ``len(ExecutionMode)``, ``ExecutionMode["PREFILL"]``, ``m in ExecutionMode``."""

    def __iter__(cls) -> Iterator[Any]:
        return iter(tuple(cls._registry.values()))  # type: ignore[attr-defined]

    def __len__(cls) -> int:
        return len(cls._registry)  # type: ignore[attr-defined]

    def __contains__(cls, item: object) -> bool:
        return any(item is m for m in cls._registry.values())  # type: ignore[attr-defined]

    def __getitem__(cls, name: str) -> Any:
        key = name.lower() if isinstance(name, str) else name
        try:
            return cls._registry[key]  # type: ignore[attr-defined]
        except (KeyError, TypeError):
            known = (k.upper() for k in cls._registry)  # type: ignore[attr-defined]
            raise UnknownNameError("execution mode", name, known) from None


class ExecutionMode(metaclass=_ModeType):
    """One execution mode. Instances are unique per value; compare with ``is`` or ``==``."""

    __slots__ = ("value",)
    _registry: ClassVar[dict[str, ExecutionMode]] = {}

    PREFILL: ClassVar[ExecutionMode]
    DECODE: ClassVar[ExecutionMode]
    UNIFIED: ClassVar[ExecutionMode]
    LONG_CONTEXT: ClassVar[ExecutionMode]
    SPECULATIVE: ClassVar[ExecutionMode]
    CONTINUOUS_BATCH: ClassVar[ExecutionMode]

    value: str

    def __new__(cls, value: str | ExecutionMode) -> ExecutionMode:
        if isinstance(value, ExecutionMode):
            return value
        try:
            return cls._registry[str(value).lower()]
        except KeyError:
            raise UnknownNameError("execution mode", value, cls._registry) from None

    @classmethod
    def register(cls, value: str) -> ExecutionMode:
        """Add a mode (idempotent) and expose it as ``ExecutionMode.<VALUE>``."""
        if not isinstance(value, str) or not value.isidentifier():
            raise ValueError(f"execution mode name must be an identifier, got {value!r}")
        key = value.lower()
        if key in cls._registry:
            return cls._registry[key]
        mode = object.__new__(cls)
        object.__setattr__(mode, "value", key)
        cls._registry[key] = mode
        setattr(cls, key.upper(), mode)
        return mode

    @classmethod
    def all(cls) -> tuple[ExecutionMode, ...]:
        """Every registered mode, in registration order."""
        return tuple(cls._registry.values())

    @property
    def name(self) -> str:
        return self.value.upper()

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("ExecutionMode is immutable")

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (ExecutionMode, (self.value,))

    def __repr__(self) -> str:
        return f"ExecutionMode.{self.name}"

    def __str__(self) -> str:
        return self.value


for _name in ("prefill", "decode", "unified", "long_context", "speculative", "continuous_batch"):
    ExecutionMode.register(_name)
