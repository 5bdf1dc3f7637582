"""The KV cache of a whole model: one :class:`LayerKVCache` per attention layer."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from tttv2.blocks.building_blocks.kv_cache.layer import LayerKVCache
from tttv2.core import KVBlockManager
from tttv2.hw.device_params import default_kv_block_size, default_kv_dtype


class PagedKVCache:
    """Per-layer key/value block pools sharing one block numbering.

    Every layer has the same ``num_blocks`` and ``block_size``, so one
    :class:`~tttv2.core.KVBlockManager` (and one ``BatchMetadata`` per pass) serves all
    layers; layers may differ in KV heads and head_dim. A contiguous (static) cache is
    the special case ``block_size == max_seq_len`` with one block per sequence
    (:class:`StaticKVCache`).
    """

    def __init__(self, layers: Sequence[LayerKVCache]) -> None:
        layers = list(layers)
        if not layers:
            raise ValueError("PagedKVCache needs at least one layer")
        first = layers[0]
        for i, layer in enumerate(layers):
            if not isinstance(layer, LayerKVCache):
                raise TypeError(
                    f"PagedKVCache layer {i} is {type(layer).__name__}, expected LayerKVCache"
                )
            if (layer.num_blocks, layer.block_size) != (first.num_blocks, first.block_size):
                raise ValueError(
                    f"PagedKVCache layer {i} has {layer.num_blocks} blocks of {layer.block_size}; "
                    f"layer 0 has {first.num_blocks} of {first.block_size} (all layers must agree)"
                )
        self.layers = layers

    @classmethod
    def for_specs(
        cls,
        specs: Sequence[Any],
        num_blocks: int,
        block_size: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> PagedKVCache:
        """Zeroed pools for one layer per spec (``AttentionSpec`` or ``KVCacheSpec``: anything
        with ``num_kv_heads`` and ``head_dim``). ``block_size`` and ``dtype`` default to
        tttv2-hw's tuned values for ``device``."""
        return cls(build_layers(specs, num_blocks, block_size, dtype, device))

    # -- access -----------------------------------------------------------------------
    def layer(self, index: int) -> LayerKVCache:
        if not -len(self.layers) <= index < len(self.layers):
            raise IndexError(
                f"PagedKVCache has {len(self.layers)} layers; layer {index} does not exist"
            )
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[LayerKVCache]:
        return iter(self.layers)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def block_pools(self) -> list[torch.Tensor]:
        """Every layer's key and value pool (``[num_blocks, ...]``, indexed by block): what
        the runtime copies to host memory when it swaps a preempted request's blocks out."""
        return [pool for layer in self.layers for pool in (layer.key, layer.value)]

    @property
    def num_blocks(self) -> int:
        return self.layers[0].num_blocks

    @property
    def block_size(self) -> int:
        return self.layers[0].block_size

    @property
    def dtype(self) -> torch.dtype:
        return self.layers[0].dtype

    @property
    def device(self) -> torch.device:
        return self.layers[0].device

    @property
    def memory_bytes(self) -> int:
        return sum(layer.memory_bytes for layer in self.layers)

    def block_manager(self, max_seq_len: int) -> KVBlockManager:
        """A fresh bookkeeper for this cache's blocks (metadata tensors on the cache's device)."""
        return KVBlockManager(self.num_blocks, self.block_size, max_seq_len, device=self.device)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(layers={self.num_layers}, num_blocks={self.num_blocks}, "
            f"block_size={self.block_size}, dtype={self.dtype}, device={self.device})"
        )


def build_layers(
    specs: Sequence[Any],
    num_blocks: int,
    block_size: int | None,
    dtype: torch.dtype | None,
    device: torch.device | str | None,
) -> list[LayerKVCache]:
    device = torch.device(device) if device is not None else torch.device("cpu")
    block_size = block_size if block_size is not None else default_kv_block_size(device)
    dtype = dtype if dtype is not None else default_kv_dtype(device)
    layers = []
    for i, spec in enumerate(specs):
        heads, head_dim = getattr(spec, "num_kv_heads", None), getattr(spec, "head_dim", None)
        if heads is None or head_dim is None:
            raise TypeError(
                f"KV cache layer {i}: {spec!r} has no num_kv_heads/head_dim (pass AttentionSpec or KVCacheSpec)"
            )
        layers.append(LayerKVCache.empty(num_blocks, block_size, heads, head_dim, dtype, device))
    return layers
