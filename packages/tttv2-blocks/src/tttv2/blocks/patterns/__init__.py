"""Patterns: the decoder layer and the transformer stack composed from the building blocks."""

from tttv2.blocks.patterns.decoder_layer import DecoderLayer
from tttv2.blocks.patterns.transformer_stack import TransformerStack
from tttv2.core.module_classes import register_module_class
from tttv2.core.specs import DecoderLayerSpec, ModelSpec

register_module_class(DecoderLayerSpec, DecoderLayer)
register_module_class(ModelSpec, TransformerStack)

__all__ = ["DecoderLayer", "TransformerStack"]
