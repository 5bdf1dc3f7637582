"""Normalization: RMSNorm (optionally ``1 + w``) and LayerNorm (with or without bias)."""

from tttv2.blocks.building_blocks.normalization.factory import NORM_CLASSES, make_norm
from tttv2.blocks.building_blocks.normalization.layer_norm import LayerNorm
from tttv2.blocks.building_blocks.normalization.rms_norm import RMSNorm
from tttv2.core.module_classes import register_module_class
from tttv2.core.specs import NormSpec

# a factory stands in for a class here: create_module only calls it with the spec
register_module_class(NormSpec, make_norm)  # type: ignore[arg-type]

__all__ = ["NORM_CLASSES", "LayerNorm", "RMSNorm", "make_norm"]
