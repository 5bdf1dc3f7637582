"""Feed-forward blocks: gated (SwiGLU, GeGLU) and plain MLPs."""

from tttv2.blocks.building_blocks.feed_forward.activations import ACTIVATION_FUNCTIONS, activation
from tttv2.blocks.building_blocks.feed_forward.feed_forward import FeedForward
from tttv2.core.module_classes import register_module_class
from tttv2.core.specs import FeedForwardSpec

register_module_class(FeedForwardSpec, FeedForward)

__all__ = ["ACTIVATION_FUNCTIONS", "FeedForward", "activation"]
