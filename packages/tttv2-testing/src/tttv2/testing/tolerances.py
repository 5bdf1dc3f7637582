"""Comparison tolerances per dtype.

A block computed in ``dtype`` is compared with a reference computed in float32/float64.
The presets say how far apart the two may be:

* ``atol`` / ``rtol``: element-wise ``|actual - expected| <= atol + rtol * |expected|``
  (``expected`` is the reference, as in ``numpy.allclose``);
* ``pcc``: the lowest acceptable Pearson correlation of the flattened tensors.

fp32 follows the project goal "max-abs error < 1e-4 on tiny random models"; bf16 and fp16
are loose enough for a few chained matmuls rounded to 8 (bf16) or 11 (fp16) mantissa bits.
For them the PCC is the primary criterion (the design's "PCC >= 0.99 per layer"), together
with the norm-wise ``||actual - expected|| <= atol * sqrt(n) + rtol * ||expected||`` (see
:mod:`tttv2.testing.metrics.relative_error`), which catches the wrong scales and offsets the
PCC cannot see; element-wise allclose is reported alongside.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Tolerance:
    """How close a result computed in one dtype must be to its reference."""

    name: str
    atol: float
    rtol: float
    pcc: float

    def __post_init__(self) -> None:
        if not (self.atol >= 0 and self.rtol >= 0):
            raise ValueError(
                f"Tolerance {self.name!r}: atol and rtol must be >= 0, got {self.atol}, {self.rtol}"
            )
        if not -1.0 <= self.pcc <= 1.0:
            raise ValueError(f"Tolerance {self.name!r}: pcc must be in [-1, 1], got {self.pcc}")

    @property
    def prefers_pcc(self) -> bool:
        """True for reduced precision, where the PCC and the norm-wise relative error decide
        (not element-wise allclose)."""
        return self.name in ("bf16", "fp16")


TOLERANCES: dict[torch.dtype, Tolerance] = {
    torch.float64: Tolerance("fp64", atol=1e-10, rtol=1e-8, pcc=0.999999),
    torch.float32: Tolerance("fp32", atol=1e-5, rtol=1e-4, pcc=0.9999),
    torch.bfloat16: Tolerance("bf16", atol=2e-2, rtol=2e-2, pcc=0.99),
    torch.float16: Tolerance("fp16", atol=2e-3, rtol=2e-3, pcc=0.999),
}

_ALIASES: dict[str, torch.dtype] = {
    "fp64": torch.float64,
    "float64": torch.float64,
    "double": torch.float64,
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
}


def as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """A torch dtype from a dtype or a name like ``"bf16"`` / ``"float32"``."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        key = dtype.lower().removeprefix("torch.")
        if key in _ALIASES:
            return _ALIASES[key]
    raise ValueError(
        f"unknown dtype {dtype!r}; expected a torch dtype or one of {', '.join(sorted(_ALIASES))}"
    )


def tolerance_for(dtype: torch.dtype | str) -> Tolerance:
    """The preset for results computed in ``dtype`` (float64, float32, bfloat16, float16)."""
    resolved = as_dtype(dtype)
    try:
        return TOLERANCES[resolved]
    except KeyError:
        known = ", ".join(str(d) for d in TOLERANCES)
        raise ValueError(f"no tolerance preset for {resolved}; presets exist for {known}") from None


def least_precise(*dtypes: torch.dtype) -> torch.dtype:
    """The floating dtype with the fewest mantissa bits among ``dtypes`` (non-floating
    dtypes are ignored; float32 if none is floating)."""
    floating = [d for d in dtypes if d.is_floating_point and d in TOLERANCES]
    if not floating:
        return torch.float32
    return max(floating, key=lambda d: torch.finfo(d).eps)
