"""The contiguous (static) layout: one block of ``max_seq_len`` tokens per sequence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tttv2.blocks.building_blocks.kv_cache.paged import PagedKVCache, build_layers
from tttv2.core import KVBlockManager


class StaticKVCache(PagedKVCache):
    """A :class:`PagedKVCache` whose blocks are whole sequences: ``max_batch`` blocks of
    ``max_seq_len`` tokens (the gpt-fast layout). The same attention code reads it; a
    sequence's keys are contiguous, so attention reads them without gathering."""

    def __init__(
        self,
        specs: Sequence[Any],
        max_batch: int,
        max_seq_len: int,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(build_layers(specs, max_batch, max_seq_len, dtype, device))
        self.max_batch = max_batch
        self.max_seq_len = max_seq_len

    def block_manager(self, max_seq_len: int | None = None) -> KVBlockManager:
        """One block per sequence; ``max_seq_len`` may only lower the context limit."""
        limit = self.max_seq_len if max_seq_len is None else min(max_seq_len, self.max_seq_len)
        return super().block_manager(limit)
