"""LONG_CONTEXT: chunked prefill, so a long prompt never needs activations for all of it.

Each sequence's new tokens are processed ``chunk_size`` at a time, end to end: project the
chunk, write its K/V, attend to the cache filled so far (with a sliding window, only to
the keys the chunk can see), project out into the result. The largest intermediates are
then ``[chunk, H, D]`` queries, ``[context, Hkv, D]`` keys and values, and the kernel's
``[H, chunk, context]`` scores at most, instead of ``[H, S, S]``.

The chunk size is the strategy's option ``chunk_size`` when it is set
(``MultiModeStrategy(chunk_size=...)``; for a dynamic strategy, that of the strategy its
rules pick, which a rule's ``options`` can set), else tttv2-hw's tuned
``prefill_chunk_size`` (what ``MultiModeStrategy()``'s default ``chunk_size=None`` asks
for), else :data:`DEFAULT_CHUNK_SIZE`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from tttv2.blocks.building_blocks.attention.checks import check_inputs
from tttv2.blocks.building_blocks.attention.kernels import AttentionKernels
from tttv2.blocks.building_blocks.kv_cache import LayerKVCache
from tttv2.core import BatchMetadata, ExecutionMode, ExecutionStrategy
from tttv2.core.specs import AttentionSpec
from tttv2.hw.device_params import device_params

DEFAULT_CHUNK_SIZE = 1024

if TYPE_CHECKING:
    from tttv2.blocks.building_blocks.attention.attention import Attention


class LongContextAttention:
    def __init__(self, spec: AttentionSpec, device: torch.device | str | None) -> None:
        self.kernels = AttentionKernels(spec, device)
        self.hw_chunk_size = _hw_chunk_size(spec, device)

    def chunk_size(self, module: Attention) -> int:
        return (
            _strategy_chunk_size(module.execution_strategy)
            or self.hw_chunk_size
            or DEFAULT_CHUNK_SIZE
        )

    def forward(
        self, module: Attention, x: torch.Tensor, meta: BatchMetadata, cache: LayerKVCache
    ) -> torch.Tensor:
        check_inputs(module, x, meta, cache)
        chunk = self.chunk_size(module)
        out = x.new_empty(x.shape)
        start = 0
        for i, (n, context) in enumerate(zip(meta.query_lens, meta.context_lens, strict=True)):
            table = meta.block_tables[i]
            for a in range(0, n, chunk):
                rows = slice(start + a, start + min(a + chunk, n))
                q, k, v = module.project(x[rows], meta.positions[rows], meta.max_seq_len)
                cache.write(k, v, meta.slot_mapping[rows])
                out[rows] = module.output(
                    self.kernels.cached(q, cache, table, context + min(a + chunk, n))
                )
            start += n
        return out


def _strategy_chunk_size(strategy: ExecutionStrategy) -> int | None:
    choose = getattr(strategy, "choose", None)  # DynamicStrategy: the strategy its rules pick now
    if callable(choose):
        strategy = choose()[0]
    size = strategy.options.get("chunk_size")
    return int(size) if size else None


def _hw_chunk_size(spec: AttentionSpec, device: torch.device | str | None) -> int | None:
    params = device_params("attention", ExecutionMode.LONG_CONTEXT, device, spec)
    return params.prefill_chunk_size if params is not None else None  # type: ignore[attr-defined]
