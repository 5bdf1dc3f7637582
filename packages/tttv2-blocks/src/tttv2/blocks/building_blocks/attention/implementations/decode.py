"""DECODE: one new token per sequence, reading the paged KV cache.

The batch's queries go to the paged-decode kernel in one call; each reads only its own
sequence's blocks, up to its own length, so a step costs the context read, never a copy
of the cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from tttv2.blocks.building_blocks.attention.checks import check_decode, check_inputs
from tttv2.blocks.building_blocks.attention.kernels import AttentionKernels
from tttv2.blocks.building_blocks.kv_cache import LayerKVCache
from tttv2.core import BatchMetadata
from tttv2.core.specs import AttentionSpec

if TYPE_CHECKING:
    from tttv2.blocks.building_blocks.attention.attention import Attention


class DecodeAttention:
    def __init__(self, spec: AttentionSpec, device: torch.device | str | None) -> None:
        self.kernels = AttentionKernels(spec, device)

    def forward(
        self, module: Attention, x: torch.Tensor, meta: BatchMetadata, cache: LayerKVCache
    ) -> torch.Tensor:
        check_inputs(module, x, meta, cache)
        check_decode(module, meta)
        seq_len = meta.max_seq_len
        q, k, v = module.project(x, meta.positions, seq_len)
        cache.write(k, v, meta.slot_mapping)
        out = self.kernels.paged(q, cache, meta.block_tables, meta.seq_lens, seq_len)
        return module.output(out)
