"""Tensor parallelism: blocks split over a :class:`tttv2.hw.mesh.DeviceMesh`.

* :mod:`~tttv2.blocks.parallel.plan`: the shard plan from the specs (which slice of which
  tensor each rank holds; sizes that do not divide are refused before loading);
* :func:`load_shard`: a rank's slices read from safetensors through the header offsets;
* blocks: :class:`ShardedAttention`, :class:`ShardedFeedForward`, :class:`ShardedMoE`,
  :class:`ShardedEmbedding`, :class:`ShardedLMHead` and the whole
  :class:`ShardedTransformerStack` (one rank each; equal to the unsharded model).
"""

from tttv2.blocks.parallel.attention import ShardedAttention
from tttv2.blocks.parallel.errors import ShardPlanError
from tttv2.blocks.parallel.feed_forward import ShardedFeedForward
from tttv2.blocks.parallel.loading import (
    ShardLoadError,
    ShardLoadReport,
    load_shard,
    safetensors_files,
)
from tttv2.blocks.parallel.moe import ShardedMoE
from tttv2.blocks.parallel.plan import (
    AttentionShard,
    FeedForwardShard,
    ModelShardPlan,
    MoEShard,
    VocabShard,
)
from tttv2.blocks.parallel.slices import TensorSlice, even_range
from tttv2.blocks.parallel.stack import ShardedDecoderLayer, ShardedTransformerStack
from tttv2.blocks.parallel.vocab import ShardedEmbedding, ShardedLMHead

__all__ = [
    "AttentionShard",
    "FeedForwardShard",
    "ModelShardPlan",
    "MoEShard",
    "ShardLoadError",
    "ShardLoadReport",
    "ShardPlanError",
    "ShardedAttention",
    "ShardedDecoderLayer",
    "ShardedEmbedding",
    "ShardedFeedForward",
    "ShardedLMHead",
    "ShardedMoE",
    "ShardedTransformerStack",
    "TensorSlice",
    "VocabShard",
    "even_range",
    "load_shard",
    "safetensors_files",
]
