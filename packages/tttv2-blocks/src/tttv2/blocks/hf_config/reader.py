"""Typed reads of a Hugging Face ``config.json`` dict, each refusing a value of the wrong
JSON type with one line that names the field (:class:`HFConfigError`).

JSON has one number type, so ``1.0`` where an id or a size belongs, ``true`` where a
number belongs, or a list where an int belongs are refused rather than coerced. Every key
read is recorded in :attr:`HFConfig.keys_read`, so a model can list exactly which config
keys change its output.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Mapping, Sequence
from typing import Any

from tttv2.blocks.hf_config.errors import HFConfigError

#: The largest integer accepted where a size or an id belongs (exact in a float64).
MAX_INT = 2**53
_MISSING: Any = object()


class HFConfig:
    """``HFConfig(config_dict, "LlamaConfig")``: the owner name only labels errors.

    A key that is absent or ``null`` takes the ``default`` given; without a default it is
    an error ("present in config.json")."""

    def __init__(self, data: Mapping[str, Any], owner: str = "config.json") -> None:
        if not isinstance(data, Mapping):
            raise HFConfigError(owner, "<root>", type(data).__name__, "a JSON object")
        self.data = data
        self.owner = owner
        self.keys_read: set[str] = set()

    def error(self, key: str, value: Any, expected: str) -> HFConfigError:
        return HFConfigError(self.owner, key, value, expected)

    def has(self, key: str) -> bool:
        """``key`` is present and not ``null`` (recorded as read)."""
        self.keys_read.add(key)
        return self.data.get(key) is not None

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        """The value as stored (``default`` when absent or ``null``)."""
        self.keys_read.add(key)
        value = self.data.get(key)
        if value is None:
            if default is _MISSING:
                raise self.error(key, None, "present in config.json")
            return default
        return value

    def int(self, key: str, default: Any = _MISSING, *, minimum: int = 1) -> Any:
        """An integer ``>= minimum`` (``true``/``1.0``/``"4"`` refused)."""
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        return check_int(self, key, value, minimum)

    def float(self, key: str, default: Any = _MISSING, *, positive: bool = False) -> Any:
        """A finite number (an int is taken as a float); ``positive``: ``> 0``."""
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        return check_float(self, key, value, positive)

    def bool(self, key: str, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, bool):
            raise self.error(key, value, "true or false")
        return value

    def str(self, key: str, default: Any = _MISSING, choices: Sequence[str] | None = None) -> Any:
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str) or (choices is not None and value not in choices):
            raise self.error(key, value, "one of " + ", ".join(choices) if choices else "a string")
        return value

    def head_dim(
        self,
        hidden_key: builtins.str = "hidden_size",
        heads_key: builtins.str = "num_attention_heads",
    ) -> builtins.int:
        """``head_dim`` when set, else ``hidden // heads`` as transformers derives it."""
        if self.has("head_dim"):
            return self.int("head_dim")
        return self.int(hidden_key) // self.int(heads_key)

    def token_ids(self, key: builtins.str) -> tuple[builtins.int, ...]:
        """``eos_token_id``-like: an integer, a list of integers or null -> a tuple."""
        value = self.raw(key, None)
        expected = "an integer >= 0, a list of integers >= 0 or null"
        items = value if isinstance(value, list) else [value] if value is not None else []
        if not all(_is_int(v) and 0 <= v <= MAX_INT for v in items):
            raise self.error(key, value, expected)
        return tuple(items)

    def token_id(self, key: builtins.str) -> builtins.int | None:
        """``bos_token_id``-like: an integer or null."""
        value = self.raw(key, None)
        if value is not None and not (_is_int(value) and 0 <= value <= MAX_INT):
            raise self.error(key, value, "an integer >= 0 or null")
        return value

    def float_list(
        self, key: builtins.str, length: builtins.int | None = None
    ) -> tuple[builtins.float, ...]:
        value = self.raw(key)
        return check_float_list(self, key, value, length)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(cfg: HFConfig, key: str, value: Any, minimum: int = 1) -> int:
    if not _is_int(value) or not minimum <= value <= MAX_INT:
        raise cfg.error(key, value, f"an integer >= {minimum}")
    return value


def check_float(cfg: HFConfig, key: str, value: Any, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise cfg.error(key, value, "a positive number" if positive else "a number")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range
        number = math.inf
    if not math.isfinite(number) or (positive and number <= 0):
        raise cfg.error(key, value, "a finite positive number" if positive else "a finite number")
    return number


def check_float_list(cfg: HFConfig, key: str, value: Any, length: int | None) -> tuple[float, ...]:
    want = f"a list of {length} numbers" if length is not None else "a list of numbers"
    if not isinstance(value, list) or (length is not None and len(value) != length):
        raise cfg.error(
            key, value if not isinstance(value, list) else f"<list of {len(value)}>", want
        )
    return tuple(check_float(cfg, f"{key}[{i}]", v) for i, v in enumerate(value))


def check_bool(cfg: HFConfig, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise cfg.error(key, value, "true or false")
    return value
