"""Rotary position embedding spec, covering the scaling variants of current open models."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tttv2.core.specs.base import ModuleSpec

ROPE_SCALINGS = ("default", "linear", "dynamic", "yarn", "llama3", "longrope")
# rules whose missing factor Hugging Face derives as max_position / original_max_position
_FACTOR_FROM_CONTEXT = ("yarn", "longrope")


@dataclass(frozen=True)
class RopeSpec(ModuleSpec):
    """Rotary embedding over the first ``rotary_dim`` channels of each head.

    ``scaling`` names the frequency-scaling rule (Hugging Face ``rope_type``); the fields
    after it are that rule's parameters, ``None`` where the rule has a standard default.
    ``factor=None`` is derived as Hugging Face does: for ``yarn`` and ``longrope``
    ``max_position / original_max_position`` (Phi-3's config gives no factor), for the
    other rules 1.0.
    ``interleaved`` selects the Meta layout (pairs ``(2i, 2i+1)``) instead of the Hugging
    Face half-split layout (pairs ``(i, i + rotary_dim/2)``).
    """

    kind = "rope"

    head_dim: int
    rotary_dim: int | None = None
    theta: float = 10000.0
    max_position: int = 4096
    scaling: str = "default"
    factor: float | None = None
    original_max_position: int | None = None
    low_freq_factor: float | None = None
    high_freq_factor: float | None = None
    beta_fast: float | None = None
    beta_slow: float | None = None
    attention_factor: float | None = None
    mscale: float | None = None
    mscale_all_dim: float | None = None
    truncate: bool = True
    short_factor: tuple[float, ...] | None = None
    long_factor: tuple[float, ...] | None = None
    interleaved: bool = False

    def validate(self) -> None:
        self._positive("head_dim", "max_position")
        if self.rotary_dim is None:
            self._set("rotary_dim", self.head_dim)
        self._positive("rotary_dim")
        if self.rotary_dim > self.head_dim or self.rotary_dim % 2:  # type: ignore[operator]  # set above
            self._fail("rotary_dim", f"an even integer <= head_dim ({self.head_dim})")
        self._one_of("scaling", ROPE_SCALINGS)
        self._bool("truncate", "interleaved")
        if self.scaling != "default" and self.scaling != "linear" and self.scaling != "dynamic":
            if self.original_max_position is None:
                self._fail("original_max_position", f"an integer for scaling={self.scaling!r}")
        if self.original_max_position is not None:
            self._positive("original_max_position")
        if self.factor is None:
            derived = self.scaling in _FACTOR_FROM_CONTEXT
            self._set("factor", self.max_position / self.original_max_position if derived else 1.0)  # type: ignore[operator]
        self._positive_float("theta", "factor")
        self._positive_float("low_freq_factor", "high_freq_factor", allow_none=True)
        if self.scaling == "llama3":
            self._positive_float("low_freq_factor", "high_freq_factor")
            if self.high_freq_factor <= self.low_freq_factor:  # type: ignore[operator]
                self._fail("high_freq_factor", f"> low_freq_factor ({self.low_freq_factor})")
        self._positive_float("attention_factor", "beta_fast", "beta_slow", allow_none=True)
        for f in ("mscale", "mscale_all_dim"):
            v = getattr(self, f)
            if v is not None and (
                isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < math.inf
            ):
                self._fail(f, "a finite number >= 0 or None")
        half = self.rotary_dim // 2  # type: ignore[operator]  # set at the top of validate()
        for f in ("short_factor", "long_factor"):
            v = getattr(self, f)
            expected = f"a sequence of rotary_dim/2 = {half} positive numbers"
            if v is None:
                if self.scaling == "longrope":
                    self._fail(f, expected)
                continue
            if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple)) or len(v) != half:
                self._fail(f, expected)
            if any(
                isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 < x < math.inf
                for x in v
            ):
                self._fail(f, expected)
            self._set(f, tuple(float(x) for x in v))
