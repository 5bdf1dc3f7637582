"""Normalization spec: RMSNorm and LayerNorm."""

from __future__ import annotations

from dataclasses import dataclass

from tttv2.core.specs.base import ModuleSpec

NORM_TYPES = ("rms", "layer")


@dataclass(frozen=True)
class NormSpec(ModuleSpec):
    """``norm_type="rms"``: ``x / rms(x) * w`` (``* (1 + w)`` with ``unit_offset``), computed
    in fp32. ``norm_type="layer"``: LayerNorm, with a bias when ``bias``."""

    kind = "norm"

    dim: int
    norm_type: str = "rms"
    eps: float = 1e-6
    unit_offset: bool = False
    bias: bool = False

    def validate(self) -> None:
        self._positive("dim")
        self._one_of("norm_type", NORM_TYPES)
        self._positive_float("eps")
        self._bool("unit_offset", "bias")
        if self.bias and self.norm_type == "rms":
            self._fail("bias", "False for norm_type='rms'")
