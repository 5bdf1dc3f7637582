"""CONTINUOUS_BATCH: one step over a ragged batch mixing sequences in prefill and decode.

Sequences bringing one token (decoding) are gathered into one paged-decode kernel call;
sequences bringing several (a new prompt, or the next chunk of one) go through the
prefill kernel one by one, a fresh prompt straight from its projections, a continued one
against its cached context.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from tttv2.blocks.building_blocks.attention.checks import check_inputs
from tttv2.blocks.building_blocks.attention.kernels import AttentionKernels
from tttv2.blocks.building_blocks.kv_cache import LayerKVCache
from tttv2.core import BatchMetadata
from tttv2.core.specs import AttentionSpec

if TYPE_CHECKING:
    from tttv2.blocks.building_blocks.attention.attention import Attention


class ContinuousBatchAttention:
    def __init__(self, spec: AttentionSpec, device: torch.device | str | None) -> None:
        self.kernels = AttentionKernels(spec, device)

    def forward(
        self, module: Attention, x: torch.Tensor, meta: BatchMetadata, cache: LayerKVCache
    ) -> torch.Tensor:
        check_inputs(module, x, meta, cache)
        q, k, v = module.project(x, meta.positions, meta.max_seq_len)
        cache.write(k, v, meta.slot_mapping)
        out = q.new_empty(q.shape)
        starts = [0]
        for n in meta.query_lens:
            starts.append(starts[-1] + n)

        decoding = [i for i, n in enumerate(meta.query_lens) if n == 1]
        if decoding:
            dev = meta.block_tables.device
            seqs = torch.tensor(decoding, device=dev)
            rows = torch.tensor([starts[i] for i in decoding], device=q.device)
            out[rows] = self.kernels.paged(
                q[rows],
                cache,
                meta.block_tables[seqs],
                meta.seq_lens[seqs],
                max(meta.total_lens[i] for i in decoding),
            )

        for i, (n, context) in enumerate(zip(meta.query_lens, meta.context_lens, strict=True)):
            if n == 1:
                continue
            span = slice(starts[i], starts[i + 1])
            if context == 0:
                out[span] = self.kernels.causal(q[None, span], k[None, span], v[None, span])[0]
            else:
                out[span] = self.kernels.cached(q[span], cache, meta.block_tables[i], context + n)
        return module.output(out)
