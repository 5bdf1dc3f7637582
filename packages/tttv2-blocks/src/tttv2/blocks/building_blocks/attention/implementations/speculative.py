"""SPECULATIVE: verify k draft tokens per sequence in one pass.

Each sequence brings its drafts (typically the last accepted token plus k proposals) as
new tokens. Every new token is a decode query at its own position: it sees the cached
context and the drafts before it, i.e. causal attention over context + drafts. All
queries of the batch go to the paged-decode kernel in one call, each with its sequence's
block table and its own length. Rolling back rejected drafts is
``KVBlockManager.truncate(seq_id, accepted_len)``: their slots are simply overwritten by
the next tokens.
"""

from __future__ import annotations

import torch

from tttv2.blocks.building_blocks.attention.checks import check_inputs
from tttv2.blocks.building_blocks.attention.kernels import AttentionKernels
from tttv2.blocks.building_blocks.kv_cache import LayerKVCache
from tttv2.core import BatchMetadata
from tttv2.core.specs import AttentionSpec


class SpeculativeAttention:
    def __init__(self, spec: AttentionSpec, device: torch.device | str | None) -> None:
        self.kernels = AttentionKernels(spec, device)

    def forward(
        self, module, x: torch.Tensor, meta: BatchMetadata, cache: LayerKVCache
    ) -> torch.Tensor:
        check_inputs(module, x, meta, cache)
        q, k, v = module.project(x, meta.positions, meta.max_seq_len)
        cache.write(k, v, meta.slot_mapping)
        owner = [i for i, n in enumerate(meta.query_lens) for _ in range(n)]  # token -> sequence
        tables = meta.block_tables[torch.tensor(owner, device=meta.block_tables.device)]
        lengths = meta.positions + 1  # a token at position p sees p + 1 keys
        out = self.kernels.paged(q, cache, tables, lengths, meta.max_seq_len)
        return module.output(out)
