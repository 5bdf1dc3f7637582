"""User overrides of the parameter tables, from a dict, a TOML/JSON file, or the file
named by the environment variable ``TTTV2_PARAMS``.

Layout (TOML shown; a dict or JSON has the same nesting)::

    [defaults]              # every op, every mode
    num_threads = 4

    [decode]                # one mode, every op
    capture_graph = false

    [attention]             # one op, every mode
    kv_block_size = 32

    [attention.decode]      # one op in one mode
    kernel = "paged_decode"

    [cuda.attention]        # the same structure under a device type applies only there
    prefill_chunk_size = 16384

Later, more specific entries win: defaults < mode < op < op.mode, and device-scoped
entries over unscoped ones. Unknown names and ill-typed values are errors that list what
is valid.
"""

from __future__ import annotations

import json
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tttv2.core.errors import InputError, TTTv2Error, UnknownNameError
from tttv2.core.modes import ExecutionMode
from tttv2.hw.dtypes import dtype_name
from tttv2.hw.params.tables import Selector
from tttv2.hw.params.types import KNOB_CHOICES, PARAMS_CLASSES

ENV_VAR = "TTTV2_PARAMS"
DEVICE_TYPES = ("cpu", "cuda", "mps", "tt")
DEFAULTS_KEY = "defaults"

Rule = tuple[Selector, dict[str, Any]]


class ParamsOverrideError(InputError, TTTv2Error, ValueError):
    """An override names an unknown section or parameter, or has a value of the wrong type."""


def knob_types() -> dict[str, Any]:
    """Every knob of every op with its type hint."""
    types: dict[str, Any] = {}
    for cls in PARAMS_CLASSES.values():
        hints = typing.get_type_hints(cls)
        for name in cls.knobs():
            types[name] = hints[name]
    return types


def load_overrides(source: Mapping[str, Any] | str | os.PathLike[str] | None) -> list[Rule]:
    """Validated rules from a dict or a ``.toml`` / ``.json`` file (None: no rules)."""
    if source is None:
        return []
    if isinstance(source, (str, os.PathLike)):
        source = read_file(Path(source))
    if not isinstance(source, Mapping):
        raise ParamsOverrideError(
            f"parameter overrides must be a mapping, got {type(source).__name__}"
        )
    rules: list[Rule] = []
    _collect(source, "*", rules, where="")
    order = {"defaults": 0, "mode": 1, "op": 2, "op_mode": 3}
    return sorted(rules, key=lambda r: (r[0][0] != "*", order[_level(r[0])]))


def env_overrides() -> list[Rule]:
    """Rules from the file named by ``TTTV2_PARAMS`` (none when unset)."""
    path = os.environ.get(ENV_VAR)
    if not path:
        return []
    try:
        return load_overrides(path)
    except (ParamsOverrideError, UnknownNameError) as exc:
        raise ParamsOverrideError(f"{ENV_VAR}={path}: {exc}") from exc


def read_file(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ParamsOverrideError(f"cannot read parameter file {path}: {exc}") from exc
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ParamsOverrideError(
            f"parameter file {path} is not valid {path.suffix[1:] or 'TOML'}: {exc}"
        ) from exc


def _level(selector: Selector) -> str:
    _, mode, op = selector
    if mode == "*" and op == "*":
        return "defaults"
    if op == "*":
        return "mode"
    return "op" if mode == "*" else "op_mode"


def _collect(section: Mapping[str, Any], device: str, rules: list[Rule], where: str) -> None:
    modes = {m.value for m in ExecutionMode.all()}
    valid = [
        DEFAULTS_KEY,
        *sorted(modes),
        *PARAMS_CLASSES,
        *(DEVICE_TYPES if device == "*" else ()),
    ]
    for key, value in section.items():
        path = f"{where}{key}"
        if not isinstance(value, Mapping):
            raise ParamsOverrideError(
                f"override {path!r} must be a table of parameters; top-level sections are: {', '.join(valid)}"
            )
        if key == DEFAULTS_KEY:
            rules.append(((device, "*", "*"), _knobs(value, None, path)))
        elif key in modes:
            rules.append(((device, key, "*"), _knobs(value, None, path)))
        elif key in PARAMS_CLASSES:
            plain = {k: v for k, v in value.items() if k not in modes}
            rules.append(((device, "*", key), _knobs(plain, key, path)))
            for mode in sorted(set(value) & modes):
                if not isinstance(value[mode], Mapping):
                    raise ParamsOverrideError(
                        f"override {path}.{mode} must be a table of parameters"
                    )
                rules.append(((device, mode, key), _knobs(value[mode], key, f"{path}.{mode}")))
        elif key in DEVICE_TYPES and device == "*":
            _collect(value, key, rules, where=f"{path}.")
        else:
            raise ParamsOverrideError(
                f"unknown override section {path!r}; valid: {', '.join(valid)}"
            )


def _knobs(values: Mapping[str, Any], op: str | None, where: str) -> dict[str, Any]:
    types = knob_types()
    allowed = PARAMS_CLASSES[op].knobs() if op else tuple(types)
    out = {}
    for name, value in values.items():
        if name not in allowed:
            raise UnknownNameError(f"parameter in override {where!r}", name, allowed)
        out[name] = check_value(name, value, types[name])
    return out


def check_value(name: str, value: Any, hint: Any) -> Any:
    """``value`` validated for knob ``name`` (dtypes canonicalised)."""
    optional = type(None) in typing.get_args(hint)
    base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
    if value is None and optional:
        return None
    if base is bool:
        if not isinstance(value, bool):
            raise ParamsOverrideError(f"parameter {name}={value!r}: expected true or false")
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            expected = "a positive integer" + (" or null" if optional else "")
            raise ParamsOverrideError(f"parameter {name}={value!r}: expected {expected}")
        return value
    if not isinstance(value, str):
        raise ParamsOverrideError(f"parameter {name}={value!r}: expected a string")
    if name.endswith("dtype"):
        try:
            return dtype_name(value)
        except UnknownNameError as exc:
            raise ParamsOverrideError(f"parameter {name}={value!r}: {exc}") from None
    choices = KNOB_CHOICES.get(name)
    if choices is not None and value not in choices:
        raise ParamsOverrideError(
            f"parameter {name}={value!r}: expected one of {', '.join(choices)}"
        )
    return value
