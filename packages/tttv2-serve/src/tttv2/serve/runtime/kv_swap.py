"""HostKVPool: spare host memory that keeps the KV blocks of preempted requests.

When the scheduler preempts a request it copies the request's KV blocks here ("swap out")
instead of discarding them; when the request is resumed the blocks are copied back into
freshly allocated device blocks ("swap in") and the request continues from where it was,
without re-prefilling. Its later tokens therefore come from exactly the same keys and
values as if it had never been preempted, in every dtype (a recomputation runs the
generated tokens through a prefill pass, which rounds differently from the decode passes
that first computed them in bf16/fp16). When the pool has no room for a request's blocks
the scheduler recomputes instead.

The cache tensors are found through the cache's optional ``block_pools()`` (every tensor
whose first dimension is the block index), else by walking lists and tuples of tensors
(e.g. ``[(key, value), ...]`` per layer). A cache with neither cannot swap: every
preemption recomputes. Host tensors are allocated on the first swap (pinned memory for a
CUDA cache), so a run that never preempts pays nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tttv2.serve.runtime.timings import EngineStats


def cache_block_pools(cache: Any, num_blocks: int) -> list[torch.Tensor]:
    """The tensors of ``cache`` indexed by block on their first dimension."""
    fn = getattr(cache, "block_pools", None)
    if callable(fn):
        return list(fn())
    found: list[torch.Tensor] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, torch.Tensor):
            if obj.dim() >= 1 and obj.shape[0] == num_blocks:
                found.append(obj)
        elif isinstance(obj, list | tuple):
            for item in obj:
                walk(item)

    walk(cache)
    return found


@dataclass(frozen=True)
class HostPoolBookkeeping:
    free: tuple[int, ...]
    tables: dict[int, tuple[int, ...]]
    lens: dict[int, int]


class HostKVPool:
    """``capacity`` host blocks mirroring the device cache's block layout."""

    def __init__(
        self, cache: Any, num_blocks: int, capacity: int, stats: EngineStats | None = None
    ) -> None:
        self.pools = cache_block_pools(cache, num_blocks) if capacity > 0 else []
        self.capacity = capacity if self.pools else 0
        self.stats = stats if stats is not None else EngineStats()
        self._host: list[torch.Tensor] | None = None
        self._free: list[int] = list(range(self.capacity - 1, -1, -1))
        self._tables: dict[int, list[int]] = {}
        self._lens: dict[int, int] = {}

    # -- queries ----------------------------------------------------------------------
    @property
    def num_free_blocks(self) -> int:
        return len(self._free)

    def can_hold(self, num_blocks: int) -> bool:
        return 0 < num_blocks <= len(self._free)

    def holds(self, seq_id: int) -> bool:
        return seq_id in self._tables

    def length(self, seq_id: int) -> int:
        """Tokens of ``seq_id`` held here."""
        return self._lens[seq_id]

    def table(self, seq_id: int) -> tuple[int, ...]:
        return tuple(self._tables[seq_id])

    # -- moves ------------------------------------------------------------------------
    def swap_out(self, seq_id: int, device_blocks: Sequence[int], length: int) -> None:
        """Copy ``device_blocks`` (holding ``length`` tokens of ``seq_id``) here."""
        if not self.can_hold(len(device_blocks)):
            raise ValueError(
                f"host KV pool has {len(self._free)} free blocks, {len(device_blocks)} needed"
            )
        host_blocks = [self._free.pop() for _ in device_blocks]
        self._tables[seq_id] = host_blocks
        self._lens[seq_id] = length
        self._copy(device_blocks, host_blocks, to_host=True)
        self.stats.swapped_out_blocks += len(device_blocks)

    def swap_in(self, seq_id: int, device_blocks: Sequence[int]) -> None:
        """Copy ``seq_id``'s blocks into ``device_blocks`` and free them here."""
        host_blocks = self._tables.pop(seq_id)
        del self._lens[seq_id]
        self._copy(device_blocks, host_blocks, to_host=False)
        self._free.extend(reversed(host_blocks))
        self.stats.swapped_in_blocks += len(host_blocks)

    def copy_back(self, host_blocks: Sequence[int], device_blocks: Sequence[int]) -> None:
        """Copy host blocks to device blocks without changing the bookkeeping (used to
        repair a rolled-back preemption whose device blocks a failed pass overwrote)."""
        self._copy(device_blocks, host_blocks, to_host=False)

    def discard(self, seq_id: int) -> None:
        """Forget ``seq_id``'s blocks (no-op for unknown ids)."""
        host_blocks = self._tables.pop(seq_id, None)
        if host_blocks is not None:
            del self._lens[seq_id]
            self._free.extend(reversed(host_blocks))

    def snapshot(self) -> HostPoolBookkeeping:
        return HostPoolBookkeeping(
            tuple(self._free), {s: tuple(t) for s, t in self._tables.items()}, dict(self._lens)
        )

    def restore(self, state: HostPoolBookkeeping) -> None:
        self._free = list(state.free)
        self._tables = {s: list(t) for s, t in state.tables.items()}
        self._lens = dict(state.lens)

    # -- copies -----------------------------------------------------------------------
    def _host_pools(self) -> list[torch.Tensor]:
        if self._host is None:
            pin = self.pools[0].device.type == "cuda"
            self._host = [
                torch.empty(
                    (self.capacity, *p.shape[1:]), dtype=p.dtype, device="cpu", pin_memory=pin
                )
                for p in self.pools
            ]
        return self._host

    def _copy(
        self, device_blocks: Sequence[int], host_blocks: Sequence[int], to_host: bool
    ) -> None:
        if not device_blocks:
            return
        t0 = time.perf_counter()
        host_pools = self._host_pools()
        dev_idx = torch.tensor(list(device_blocks), dtype=torch.long, device=self.pools[0].device)
        host_idx = torch.tensor(list(host_blocks), dtype=torch.long)
        for dev, host in zip(self.pools, host_pools, strict=True):
            if to_host:
                host.index_copy_(0, host_idx, dev.index_select(0, dev_idx).to("cpu"))
            else:
                dev.index_copy_(0, dev_idx, host.index_select(0, host_idx).to(dev.device))
        if self.pools[0].device.type == "cuda":
            torch.cuda.synchronize(self.pools[0].device)
        self.stats.swap_seconds += time.perf_counter() - t0
