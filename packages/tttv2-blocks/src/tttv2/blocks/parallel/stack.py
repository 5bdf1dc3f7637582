"""ShardedTransformerStack: a decoder-only model split over a :class:`~tttv2.hw.mesh.DeviceMesh`.

The same math, parameter names and calling convention as
:class:`~tttv2.blocks.TransformerStack` (``forward(input_ids [T], meta, cache)`` -> logits
``[len(meta.logits_indices), vocab]`` on every rank), with each block replaced by its
sharded form from the :class:`~tttv2.blocks.parallel.plan.ModelShardPlan`: vocab-parallel
embedding and head, attention over the rank's heads and its own paged KV cache
(:meth:`new_cache` sizes the pools for the rank's KV heads), feed-forward / MoE over its
columns / experts; two all-reduces per layer, one all-reduce for the embedding and one
all-gather of the logits per pass. Every rank runs every pass with the same inputs (the
same ``BatchMetadata``: in a runtime, rank 0 schedules and broadcasts it).

Passes run op by op in every execution mode the strategy provides; the fused native and
compiled decode paths of :class:`~tttv2.blocks.TransformerStack` are not used here (they
have no collective between layers).
"""

from __future__ import annotations

from typing import Any

import torch

from tttv2.blocks.building_blocks.kv_cache import PagedKVCache
from tttv2.blocks.building_blocks.normalization import make_norm
from tttv2.blocks.building_blocks.rope.rows import pass_scope
from tttv2.blocks.parallel.attention import ShardedAttention
from tttv2.blocks.parallel.feed_forward import ShardedFeedForward
from tttv2.blocks.parallel.moe import ShardedMoE
from tttv2.blocks.parallel.plan import FeedForwardShard, ModelShardPlan
from tttv2.blocks.parallel.vocab import ShardedEmbedding, ShardedLMHead
from tttv2.blocks.patterns.decoder_layer import DecoderLayer
from tttv2.blocks.patterns.pass_context import pass_context, selects_by_context
from tttv2.core import BaseModule, BatchMetadata, ExecutionStrategy
from tttv2.core.specs import DecoderLayerSpec, ModelSpec
from tttv2.hw.mesh import DeviceMesh


class ShardedDecoderLayer(DecoderLayer):
    """A :class:`~tttv2.blocks.DecoderLayer` (same forward, same attribute names) whose
    attention and feed-forward are the rank's shards; norms are replicated."""

    def __init__(
        self,
        spec: DecoderLayerSpec,
        shards: tuple[Any, Any],
        mesh: DeviceMesh,
        device: torch.device | str | None = None,
        execution_strategy: ExecutionStrategy | str | None = None,
    ) -> None:
        # DecoderLayer's constructor would build the whole attention and ffn: build the
        # attributes its forward reads (documented in its docstring) from the shards.
        BaseModule.__init__(self, spec, device, execution_strategy)
        dev = self.device
        attn_shard, ffn_shard = shards
        self.attn_norm = make_norm(spec.attn_norm, device=dev)
        self.attention = ShardedAttention(attn_shard, mesh, dev, self.execution_strategy)
        self.post_attn_norm = (
            make_norm(spec.post_attn_norm, device=dev) if spec.post_attn_norm else None
        )
        self.ffn_norm = make_norm(spec.ffn_norm, device=dev) if spec.ffn_norm else None
        if isinstance(ffn_shard, FeedForwardShard):
            self.ffn = ShardedFeedForward(ffn_shard, mesh, device=dev)
        else:
            self.ffn = ShardedMoE(ffn_shard, mesh, device=dev)
        self.post_ffn_norm = (
            make_norm(spec.post_ffn_norm, device=dev) if spec.post_ffn_norm else None
        )


class ShardedTransformerStack(BaseModule):
    specialized = False
    spec: ModelSpec

    def __init__(
        self,
        spec: ModelSpec,
        mesh: DeviceMesh,
        device: torch.device | str | None = None,
        execution_strategy: ExecutionStrategy | str | None = None,
    ) -> None:
        if not isinstance(spec, ModelSpec):
            raise TypeError(f"ShardedTransformerStack needs a ModelSpec, got {type(spec).__name__}")
        plan = ModelShardPlan(spec, mesh.world_size, mesh.rank)  # refuses what cannot split
        super().__init__(spec, device if device is not None else mesh.device, execution_strategy)
        dev = self.device
        self.mesh = mesh
        self.plan = plan
        self.embedding = ShardedEmbedding(spec.embedding, plan.embedding, mesh, device=dev)
        self.layers = torch.nn.ModuleList(
            ShardedDecoderLayer(layer, shards, mesh, dev, self.execution_strategy)
            for layer, shards in zip(spec.layers, plan.layers, strict=True)
        )
        self.final_norm = make_norm(spec.final_norm, device=dev)
        self.lm_head = ShardedLMHead(
            spec.lm_head,
            plan.lm_head,
            mesh,
            embedding=self.embedding if spec.lm_head.tied else None,
            device=dev,
        )
        self._by_context = selects_by_context(self)

    def forward(
        self,
        input_ids: torch.Tensor,
        meta: BatchMetadata,
        cache: PagedKVCache,
        output_hidden_states: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Logits ``[len(meta.logits_indices), vocab]`` (on every rank) for ``input_ids [T]``;
        every layer writes the rank's KV heads of the new tokens into ``cache``."""
        if (
            not isinstance(input_ids, torch.Tensor)
            or input_ids.dim() != 1
            or input_ids.shape[0] != meta.num_tokens
        ):
            got = (
                tuple(input_ids.shape)
                if isinstance(input_ids, torch.Tensor)
                else type(input_ids).__name__
            )
            raise ValueError(
                f"ShardedTransformerStack: input_ids must be [T={meta.num_tokens}], got {got}"
            )
        if len(cache) != len(self.layers):
            raise ValueError(
                f"ShardedTransformerStack: cache has {len(cache)} layers, the model {len(self.layers)}"
            )
        if self._by_context:
            self.set_mode(meta.mode, context=pass_context(meta))
        elif self.current_mode is not meta.mode:
            self.set_mode(meta.mode)
        h = self.embedding(input_ids, meta.positions)
        hidden = [h]
        with pass_scope():
            for layer, layer_cache in zip(self.layers, cache.layers, strict=True):
                h = layer(h, meta, layer_cache)
                if output_hidden_states:
                    hidden.append(h)
        logits = self.lm_head(self.final_norm(h[meta.logits_indices]))
        if not output_hidden_states:
            return logits
        hidden[-1] = self.final_norm(h)
        return logits, tuple(hidden)

    def new_cache(
        self, num_blocks: int, block_size: int | None = None, dtype: torch.dtype | None = None
    ) -> PagedKVCache:
        """A zeroed paged KV cache of this rank's KV heads for every layer."""
        weight = self.embedding.weight
        return PagedKVCache.for_specs(
            [attn.local_spec for attn, _ in self.plan.layers],
            num_blocks,
            block_size,
            dtype=dtype if dtype is not None else weight.dtype,
            device=weight.device,
        )

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def parameter_bytes(self) -> int:
        """Bytes of the parameters this rank holds (shared tensors counted once)."""
        return sum(p.numel() * p.element_size() for p in self.parameters())
