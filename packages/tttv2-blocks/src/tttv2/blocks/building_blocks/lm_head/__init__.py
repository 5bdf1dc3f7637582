"""Language-model head: tied or untied projection to the vocabulary, optional soft-cap."""

from tttv2.blocks.building_blocks.lm_head.lm_head import LMHead
from tttv2.core.module_classes import register_module_class
from tttv2.core.specs import LMHeadSpec

register_module_class(LMHeadSpec, LMHead)

__all__ = ["LMHead"]
