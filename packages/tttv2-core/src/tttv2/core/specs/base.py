"""Base of every module spec: frozen, self-validating, round-trips through dicts and JSON."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Iterable
from typing import Any, ClassVar, TypeVar

from tttv2.core.errors import SpecError, UnknownNameError

S = TypeVar("S", bound="ModuleSpec")

_SPEC_KINDS: dict[str, type[ModuleSpec]] = {}


class ModuleSpec:
    """Mixin for ``@dataclass(frozen=True)`` specs.

    Subclasses set ``kind`` (the name used in dicts) and implement ``validate()``, which
    may normalise derived fields with ``self._set`` before checking them.
    """

    kind: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _SPEC_KINDS[cls.kind] = cls

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`SpecError` for any invalid field."""

    # -- helpers for validate() -------------------------------------------------------
    def _set(self, field: str, value: Any) -> None:
        object.__setattr__(self, field, value)

    def _fail(self, field: str, expected: str) -> typing.NoReturn:
        raise SpecError(type(self).__name__, field, getattr(self, field), expected)

    def _positive(self, *fields: str) -> None:
        for f in fields:
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                self._fail(f, "a positive integer")

    def _positive_float(self, *fields: str, allow_none: bool = False) -> None:
        for f in fields:
            v = getattr(self, f)
            if v is None and allow_none:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < math.inf:
                self._fail(f, "a finite positive number" + (" or None" if allow_none else ""))

    def _one_of(self, field: str, allowed: Iterable[Any]) -> None:
        allowed = tuple(allowed)
        if getattr(self, field) not in allowed:
            self._fail(field, "one of " + ", ".join(repr(a) for a in allowed))

    def _bool(self, *fields: str) -> None:
        for f in fields:
            if not isinstance(getattr(self, f), bool):
                self._fail(f, "True or False")

    # -- data round trip --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON-safe) with a ``kind`` key naming the spec class."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            out[f.name] = _to_data(getattr(self, f.name))
        return out

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls: type[S], data: dict[str, Any]) -> S:
        """Build a spec from :meth:`to_dict` output. ``kind`` picks the class when
        called on ``ModuleSpec`` itself; unknown keys are reported by name. Nested specs
        need a ``kind`` key only where a field accepts several spec classes."""
        if not isinstance(data, dict):
            raise SpecError(cls.__name__, "data", data, "a dict of field values")
        data = dict(data)
        kind = data.pop("kind", cls.kind)
        if not kind or not isinstance(kind, str):
            kinds = "one of " + ", ".join(repr(k) for k in spec_kinds())
            raise SpecError(cls.__name__, "kind", None if kind == "" else kind, kinds)
        target = spec_class(kind)
        if cls is not ModuleSpec and not issubclass(target, cls):
            raise SpecError(cls.__name__, "kind", kind, f"{cls.kind!r}")
        hints = typing.get_type_hints(target)
        fields = dataclasses.fields(target)  # type: ignore[arg-type]
        names = {f.name for f in fields}
        unknown = sorted(set(data) - names, key=repr)  # keys of any type, e.g. 3 from a bad table
        if unknown:
            bad = unknown[0]
            field = bad if isinstance(bad, str) else repr(bad)
            raise SpecError(target.__name__, field, data[bad], "one of " + ", ".join(sorted(names)))
        for f in fields:
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required and f.name not in data:
                raise SpecError(target.__name__, f.name, None, "a value (the field is required)")
        kwargs = {}
        for k, v in data.items():
            try:
                kwargs[k] = _from_data(hints[k], v, target.__name__, k)
            except SpecError as exc:  # a nested spec: name the path from this spec down
                if exc.spec == target.__name__ and exc.field.split(".")[0].split("[")[0] == k:
                    raise
                raise SpecError(
                    target.__name__, f"{k}.{exc.field}", exc.value, exc.expected
                ) from exc
        return target(**kwargs)  # type: ignore[return-value]

    @classmethod
    def from_json(cls: type[S], text: str) -> S:
        return cls.from_dict(json.loads(text))

    def replace(self: S, **changes: Any) -> S:
        """A copy with some fields changed (validated again).

        Fields derived at construction (``AttentionSpec.num_kv_heads``/``head_dim``,
        ``RopeSpec.rotary_dim``/``factor``) hold their derived values; pass ``None`` for them
        to have them derived again from the changed fields."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def spec_class(kind: str) -> type[ModuleSpec]:
    """The spec class registered under ``kind`` (e.g. ``"attention"``)."""
    try:
        return _SPEC_KINDS[kind]
    except KeyError:
        raise UnknownNameError("spec kind", kind, _SPEC_KINDS) from None


def spec_kinds() -> tuple[str, ...]:
    return tuple(sorted(_SPEC_KINDS))


def _to_data(value: Any) -> Any:
    if isinstance(value, ModuleSpec):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_to_data(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_data(v) for k, v in value.items()}
    return value


def _spec_options(hint: Any) -> list[type[ModuleSpec]]:
    return [a for a in typing.get_args(hint) if isinstance(a, type) and issubclass(a, ModuleSpec)]


def _from_data(hint: Any, value: Any, spec: str, field: str) -> Any:
    """Rebuild nested specs and tuples from plain data, guided by the field's type hint.

    Values that do not fit the hint are passed through unchanged for ``validate()`` to
    reject with a message naming the field, except where no spec could be built."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        specs = _spec_options(hint)
        if specs and isinstance(value, dict):
            if "kind" in value:
                return ModuleSpec.from_dict(value)
            if len(specs) == 1:
                return specs[0].from_dict(value)
            kinds = ", ".join(repr(o.kind) for o in specs)
            raise SpecError(spec, field, value, f"a table with a 'kind' key, one of {kinds}")
        for opt in options:
            if typing.get_origin(opt) is tuple or opt is tuple:
                if isinstance(value, (list, tuple)):
                    return _from_data(opt, value, spec, field)
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise SpecError(spec, field, value, "a list")
        args = typing.get_args(hint)
        inner = args[0] if args else Any
        items = []
        for i, v in enumerate(value):
            try:
                items.append(_from_data(inner, v, spec, f"{field}[{i}]"))
            except SpecError as exc:
                if exc.spec == spec:
                    raise
                raise SpecError(spec, f"{field}[{i}].{exc.field}", exc.value, exc.expected) from exc
        return tuple(items)
    if isinstance(hint, type) and issubclass(hint, ModuleSpec) and isinstance(value, dict):
        return hint.from_dict(value)
    if isinstance(value, dict) and "kind" in value:
        return ModuleSpec.from_dict(value)
    return value
