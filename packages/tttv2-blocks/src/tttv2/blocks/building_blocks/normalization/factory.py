"""``make_norm(spec)``: the norm module a NormSpec describes."""

from __future__ import annotations

from typing import Any

import torch

from tttv2.blocks.building_blocks.normalization.layer_norm import LayerNorm
from tttv2.blocks.building_blocks.normalization.rms_norm import RMSNorm
from tttv2.core.specs import NormSpec

NORM_CLASSES: dict[str, type[torch.nn.Module]] = {"rms": RMSNorm, "layer": LayerNorm}


def make_norm(
    spec: NormSpec, device: Any = None, execution_strategy: Any = None
) -> torch.nn.Module:
    """``RMSNorm`` for ``norm_type="rms"``, ``LayerNorm`` for ``"layer"``."""
    if not isinstance(spec, NormSpec):
        raise TypeError(f"make_norm needs a NormSpec, got {type(spec).__name__}")
    return NORM_CLASSES[spec.norm_type](spec, device=device)
