"""SPECULATIVE: verify k draft tokens per sequence in one pass.

Each sequence brings its drafts (typically the last accepted token plus k proposals) as
new tokens; their K/V are written, then the drafts attend causally to the cached context
and to the drafts before them: one prefill-kernel call per sequence over its context
gathered once, whatever k. (Treating each draft as its own decode query would read the
context k + 1 times.) Rolling back rejected drafts is
``KVBlockManager.truncate(seq_id, accepted_len)``: their slots are overwritten by the
next tokens written.
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


class SpeculativeAttention:
    def __init__(self, spec: AttentionSpec, device: torch.device | str | None) -> None:
        self.kernels = AttentionKernels(spec, device)

    def forward(
        self, module: Attention, x: torch.Tensor, meta: BatchMetadata, cache: LayerKVCache
    ) -> torch.Tensor:
        check_inputs(module, x, meta, cache)
        q, k, v = module.project(x, meta.positions, meta.max_seq_len)
        cache.write(k, v, meta.slot_mapping)
        return module.output(attend_each_cached(self.kernels, q, meta, cache))
