"""Mixture of experts: top-k routed gated experts, optional (gated) shared expert."""

from tttv2.blocks.building_blocks.moe.moe import MoE
from tttv2.blocks.building_blocks.moe.router import route
from tttv2.core.module_classes import register_module_class
from tttv2.core.specs import MoESpec

register_module_class(MoESpec, MoE)

__all__ = ["MoE", "route"]
