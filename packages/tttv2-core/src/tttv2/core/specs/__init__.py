"""Module specs: frozen dataclasses that say *what* a block computes."""

from tttv2.core.specs.attention import AttentionSpec
from tttv2.core.specs.base import ModuleSpec, spec_class, spec_kinds
from tttv2.core.specs.decoder_layer import DecoderLayerSpec
from tttv2.core.specs.embedding import EmbeddingSpec
from tttv2.core.specs.feed_forward import ACTIVATIONS, FeedForwardSpec
from tttv2.core.specs.kv_cache import KVCacheSpec
from tttv2.core.specs.lm_head import LMHeadSpec
from tttv2.core.specs.model import ModelSpec
from tttv2.core.specs.moe import MoESpec
from tttv2.core.specs.normalization import NORM_TYPES, NormSpec
from tttv2.core.specs.rope import ROPE_SCALINGS, RopeSpec

__all__ = [
    "ACTIVATIONS",
    "NORM_TYPES",
    "ROPE_SCALINGS",
    "AttentionSpec",
    "DecoderLayerSpec",
    "EmbeddingSpec",
    "FeedForwardSpec",
    "KVCacheSpec",
    "LMHeadSpec",
    "ModelSpec",
    "MoESpec",
    "ModuleSpec",
    "NormSpec",
    "RopeSpec",
    "spec_class",
    "spec_kinds",
]
