"""Rotary position embeddings (RoPE) with the scaling rules of current open models."""

from tttv2.blocks.building_blocks.rope.frequencies import FREQUENCY_RULES, rope_frequencies
from tttv2.blocks.building_blocks.rope.rotary_embedding import RotaryEmbedding
from tttv2.core.module_classes import register_module_class
from tttv2.core.specs import RopeSpec

register_module_class(RopeSpec, RotaryEmbedding)

__all__ = ["FREQUENCY_RULES", "RotaryEmbedding", "rope_frequencies"]
