"""UNIFIED: one implementation for any batch (prefill, decode, or a mix).

Every sequence's new tokens attend, through the prefill kernel, to the keys gathered from
the cache: cached context plus the new tokens just written. Simple and uniform; the
specialised prefill and decode implementations avoid the gather where they can.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from tttv2.blocks.building_blocks.attention.checks import check_inputs
from tttv2.blocks.building_blocks.attention.implementations.prefill import attend_each_cached
from tttv2.blocks.building_blocks.attention.kernels import AttentionKernels
from tttv2.blocks.building_blocks.kv_cache import LayerKVCache
from tttv2.core import BatchMetadata
from tttv2.core.specs import AttentionSpec

if TYPE_CHECKING:
    from tttv2.blocks.building_blocks.attention.attention import Attention


class UnifiedAttention:
    def __init__(self, spec: AttentionSpec, device: torch.device | str | None) -> None:
        self.kernels = AttentionKernels(spec, device)

    def forward(
        self, module: Attention, x: torch.Tensor, meta: BatchMetadata, cache: LayerKVCache
    ) -> torch.Tensor:
        check_inputs(module, x, meta, cache)
        q, k, v = module.project(x, meta.positions, meta.max_seq_len)
        cache.write(k, v, meta.slot_mapping)
        return module.output(attend_each_cached(self.kernels, q, meta, cache))
