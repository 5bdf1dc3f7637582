"""PREFILL: many new tokens per sequence at once, causal, filling the KV cache.

Fresh sequences (no cached context) attend to their own new keys straight from the
projection, without reading the cache back; sequences of equal length go through the
kernel as one batch, so a single prompt is one kernel call. Sequences that already have
cached context (a prefix) read it from the cache.
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


class PrefillAttention:
    def __init__(self, spec: AttentionSpec, device: torch.device | str | None) -> None:
        self.kernels = AttentionKernels(spec, device)

    def forward(
        self, module: Attention, x: torch.Tensor, meta: BatchMetadata, cache: LayerKVCache
    ) -> torch.Tensor:
        check_inputs(module, x, meta, cache)
        q, k, v = module.project(x, meta.positions, meta.max_seq_len)
        cache.write(k, v, meta.slot_mapping)
        if meta.is_fresh_prefill:
            return module.output(attend_fresh(self.kernels, q, k, v, meta.query_lens))
        return module.output(attend_each_cached(self.kernels, q, meta, cache))


def attend_fresh(
    kernels: AttentionKernels,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    query_lens: tuple[int, ...],
) -> torch.Tensor:
    """Sequences without cached context: each attends causally to its own new tokens."""
    if len(set(query_lens)) == 1:  # one batched kernel call (a single prompt included)
        B, L = len(query_lens), query_lens[0]
        out = kernels.causal(q.unflatten(0, (B, L)), k.unflatten(0, (B, L)), v.unflatten(0, (B, L)))
        return out.flatten(0, 1)
    out = q.new_empty(q.shape)
    start = 0
    for n in query_lens:
        rows = slice(start, start + n)
        out[rows] = kernels.causal(q[None, rows], k[None, rows], v[None, rows])[0]
        start += n
    return out


def attend_each_cached(
    kernels: AttentionKernels, q: torch.Tensor, meta: BatchMetadata, cache: LayerKVCache
) -> torch.Tensor:
    """Every sequence's new tokens against its cached context plus themselves (all K/V
    already in the cache), one sequence at a time."""
    out = q.new_empty(q.shape)
    start = 0
    for i, (n, total) in enumerate(zip(meta.query_lens, meta.total_lens, strict=True)):
        rows = slice(start, start + n)
        out[rows] = kernels.cached(q[rows], cache, meta.block_tables[i], total)
        start += n
    return out
