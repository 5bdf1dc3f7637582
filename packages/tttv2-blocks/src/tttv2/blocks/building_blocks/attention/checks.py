"""Input checks shared by every attention implementation (Python ints only: no device sync)."""

from __future__ import annotations

from typing import Any

import torch

from tttv2.blocks.building_blocks.kv_cache import LayerKVCache
from tttv2.core import BatchMetadata


def check_inputs(module: Any, x: torch.Tensor, meta: BatchMetadata, cache: LayerKVCache) -> None:
    spec = module.spec
    name = type(module).__name__
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != spec.hidden_dim:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: x must be [T, {spec.hidden_dim}] (tokens flattened), got {got}")
    if not isinstance(meta, BatchMetadata):
        raise TypeError(f"{name}: meta must be a BatchMetadata, got {type(meta).__name__}")
    if x.shape[0] != meta.num_tokens:
        raise ValueError(
            f"{name}: x has {x.shape[0]} tokens but meta describes {meta.num_tokens} "
            f"(query_lens {meta.query_lens})"
        )
    if not isinstance(cache, LayerKVCache):
        raise TypeError(
            f"{name}: cache must be a LayerKVCache (PagedKVCache.layer(i)), got {type(cache).__name__}"
        )
    if (cache.num_kv_heads, cache.head_dim) != (spec.num_kv_heads, spec.head_dim):
        raise ValueError(
            f"{name}: cache holds {cache.num_kv_heads} KV heads of {cache.head_dim}; the spec needs "
            f"{spec.num_kv_heads} of {spec.head_dim}"
        )
    if cache.block_size != meta.block_size:
        raise ValueError(
            f"{name}: cache block_size {cache.block_size} != meta.block_size {meta.block_size}"
        )


def check_decode(module: Any, meta: BatchMetadata) -> None:
    if not meta.is_decode:
        raise ValueError(
            f"{type(module).__name__} in decode mode takes exactly one new token per sequence, got "
            f"query_lens {meta.query_lens}; use prefill, unified or continuous_batch for longer queries"
        )
