"""Bookkeeping of a paged KV cache: which blocks each sequence owns and how long it is.

Pure Python, no tensors of the cache itself (those live in tttv2-blocks). A block
belongs to at most one sequence at a time and block tables are per sequence, so one
sequence can never read another's keys and values. Allocation is all-or-nothing:
:class:`KVCacheExhaustedError` leaves every sequence as it was, so a scheduler can queue
or preempt and retry.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tttv2.core.batch import BatchMetadata, int64_tensor, logits_positions
from tttv2.core.errors import KVCacheExhaustedError, TTTv2Error
from tttv2.core.modes import ExecutionMode


@dataclass(frozen=True)
class BlockBookkeeping:
    """A copy of a :class:`KVBlockManager`'s free list, block tables and lengths (see
    :meth:`KVBlockManager.snapshot`)."""

    free: tuple[int, ...]
    tables: dict[int, tuple[int, ...]]
    lens: dict[int, int]


class KVBlockManager:
    def __init__(
        self, num_blocks: int, block_size: int, max_seq_len: int, device: torch.device | str = "cpu"
    ) -> None:
        for name, v in (
            ("num_blocks", num_blocks),
            ("block_size", block_size),
            ("max_seq_len", max_seq_len),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(
                    f"KVBlockManager.{name}={v!r} is invalid: expected a positive integer"
                )
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.max_seq_len = max_seq_len
        self.device = torch.device(device)
        self._free: list[int] = list(range(num_blocks - 1, -1, -1))  # pop() hands out 0, 1, ...
        self._tables: dict[int, list[int]] = {}
        self._lens: dict[int, int] = {}

    # -- queries ----------------------------------------------------------------------
    @property
    def num_free_blocks(self) -> int:
        return len(self._free)

    def has_sequence(self, seq_id: int) -> bool:
        return seq_id in self._tables

    def seq_len(self, seq_id: int) -> int:
        self._check(seq_id)
        return self._lens[seq_id]

    def block_table(self, seq_id: int) -> tuple[int, ...]:
        self._check(seq_id)
        return tuple(self._tables[seq_id])

    def blocks_needed(self, seq_id: int | None, num_new_tokens: int) -> int:
        """Blocks to allocate before ``seq_id`` (``None``: a new sequence) can take
        ``num_new_tokens`` more tokens."""
        length = self._lens.get(seq_id, 0) if seq_id is not None else 0
        have = len(self._tables.get(seq_id, ())) if seq_id is not None else 0
        return max(0, -(-(length + num_new_tokens) // self.block_size) - have)

    def can_append(self, seq_id: int | None, num_new_tokens: int) -> bool:
        return self.blocks_needed(seq_id, num_new_tokens) <= len(self._free)

    # -- changes ----------------------------------------------------------------------
    def add_sequence(self, seq_id: int) -> None:
        if seq_id in self._tables:
            raise TTTv2Error(f"sequence {seq_id} is already in the KV cache")
        self._tables[seq_id] = []
        self._lens[seq_id] = 0

    def reserve(self, seq_id: int, num_new_tokens: int) -> None:
        """Make room for ``num_new_tokens`` more tokens and count them as cached."""
        self._check(seq_id)
        new_len = self._lens[seq_id] + num_new_tokens
        if new_len > self.max_seq_len:
            raise TTTv2Error(
                f"sequence {seq_id} would hold {new_len} tokens; the context limit is {self.max_seq_len}"
            )
        need = self.blocks_needed(seq_id, num_new_tokens)
        if need > len(self._free):
            raise KVCacheExhaustedError(need, len(self._free), seq_id)
        self._tables[seq_id].extend(self._free.pop() for _ in range(need))
        self._lens[seq_id] = new_len

    def truncate(self, seq_id: int, new_len: int) -> None:
        """Forget tokens from ``new_len`` on (speculative rollback, preemption); blocks no
        longer needed go back to the pool."""
        self._check(seq_id)
        if not 0 <= new_len <= self._lens[seq_id]:
            raise ValueError(
                f"truncate to {new_len}: sequence {seq_id} holds {self._lens[seq_id]} tokens"
            )
        keep = -(-new_len // self.block_size)
        table = self._tables[seq_id]
        self._free.extend(reversed(table[keep:]))
        del table[keep:]
        self._lens[seq_id] = new_len

    def free(self, seq_id: int) -> None:
        """Release every block of ``seq_id`` (no-op for unknown ids)."""
        table = self._tables.pop(seq_id, None)
        if table is not None:
            self._free.extend(reversed(table))
            del self._lens[seq_id]

    def reset(self) -> None:
        for seq_id in list(self._tables):
            self.free(seq_id)

    def snapshot(self) -> BlockBookkeeping:
        """The bookkeeping as it is now (no cache contents), for :meth:`restore`."""
        return BlockBookkeeping(
            tuple(self._free), {s: tuple(t) for s, t in self._tables.items()}, dict(self._lens)
        )

    def restore(self, state: BlockBookkeeping) -> None:
        """Put the free list, block tables and lengths back as :meth:`snapshot` saw them
        (a step that failed part-way is undone this way)."""
        self._free = list(state.free)
        self._tables = {s: list(t) for s, t in state.tables.items()}
        self._lens = dict(state.lens)

    # -- metadata ---------------------------------------------------------------------
    def prepare(
        self,
        seq_ids: Sequence[int],
        query_lens: Sequence[int],
        mode: ExecutionMode | str,
        logits: str | Sequence[int] = "last",
    ) -> BatchMetadata:
        """Reserve room for each sequence's new tokens (adding unknown sequences) and
        describe the pass. All-or-nothing: on any error (a sequence over ``max_seq_len``,
        then :class:`KVCacheExhaustedError`) nothing changes."""
        seq_ids, query_lens = tuple(seq_ids), tuple(map(operator.index, query_lens))
        if len(seq_ids) != len(query_lens) or not seq_ids:
            raise ValueError(
                "prepare() needs one query length per sequence and at least one sequence"
            )
        if len(set(seq_ids)) != len(seq_ids):
            raise ValueError(f"prepare(): a sequence appears twice in {seq_ids}")
        if min(query_lens) <= 0:
            raise ValueError(f"prepare(): query lengths must be positive, got {query_lens}")
        mode = ExecutionMode(mode)  # check mode and logits before anything changes
        which = _logits_indices(query_lens, logits)
        lens, tables = self._lens, self._tables
        context_lens = tuple(lens.get(s, 0) for s in seq_ids)
        for s, q, c in zip(
            seq_ids, query_lens, context_lens, strict=True
        ):  # permanent error before transient
            if c + q > self.max_seq_len:
                raise TTTv2Error(
                    f"sequence {s} would hold {c + q} tokens; the context limit is {self.max_seq_len}"
                )
        grow = [
            self.blocks_needed(s, q) for s, q in zip(seq_ids, query_lens, strict=True)
        ]  # unknown ids: 0 held
        need = sum(grow)
        if need > len(self._free):
            raise KVCacheExhaustedError(need, len(self._free))
        free = self._free
        for s, q, c, n in zip(seq_ids, query_lens, context_lens, grow, strict=True):
            tables.setdefault(s, []).extend(free.pop() for _ in range(n))
            lens[s] = c + q
        return self._describe(seq_ids, query_lens, context_lens, mode, which)

    def describe(
        self,
        seq_ids: Sequence[int],
        query_lens: Sequence[int],
        context_lens: Sequence[int],
        mode: ExecutionMode | str,
        logits: str | Sequence[int] = "last",
    ) -> BatchMetadata:
        """Metadata for tokens already reserved (positions ``context .. context+query``)."""
        query_lens = tuple(query_lens)
        return self._describe(
            seq_ids,
            query_lens,
            context_lens,
            ExecutionMode(mode),
            _logits_indices(query_lens, logits),
        )

    def _describe(
        self,
        seq_ids: Sequence[int],
        query_lens: Sequence[int],
        context_lens: Sequence[int],
        mode: ExecutionMode,
        which: list[int],
    ) -> BatchMetadata:
        bs = self.block_size
        positions: list[int] = []
        slots: list[int] = []
        for s, q, c in zip(seq_ids, query_lens, context_lens, strict=True):
            table = self._tables[s]
            for p in range(c, c + q):
                positions.append(p)
                slots.append(table[p // bs] * bs + p % bs)
        width = max(len(self._tables[s]) for s in seq_ids)
        tables = [
            b for s in seq_ids for b in self._tables[s] + [0] * (width - len(self._tables[s]))
        ]
        seq_lens = [c + q for c, q in zip(context_lens, query_lens, strict=True)]
        starts = [0]
        for q in query_lens:
            starts.append(starts[-1] + q)
        # one host-to-device tensor for the six, handed out as views: a decode step of a
        # small model is a few milliseconds, and each tensor made costs microseconds
        parts = (positions, slots, tables, seq_lens, starts, which)
        flat = int64_tensor([v for part in parts for v in part], self.device)
        pos_t, slot_t, table_t, len_t, start_t, which_t = flat.split_with_sizes(
            [len(part) for part in parts]
        )
        return BatchMetadata(
            mode=mode,
            seq_ids=tuple(seq_ids),
            query_lens=tuple(query_lens),
            context_lens=tuple(context_lens),
            block_size=bs,
            positions=pos_t,
            slot_mapping=slot_t,
            block_tables=table_t.view(len(seq_ids), width),
            seq_lens=len_t,
            query_start=start_t,
            logits_indices=which_t,
        )

    def _check(self, seq_id: int) -> None:
        if seq_id not in self._tables:
            raise TTTv2Error(f"sequence {seq_id} is not in the KV cache")


def _logits_indices(query_lens: tuple[int, ...], logits: str | Sequence[int]) -> list[int]:
    """``"last"``/``"all"`` or explicit token indices, checked to lie in ``[0, T)``."""
    if isinstance(logits, str):
        return logits_positions(query_lens, logits)
    which = [int(i) for i in logits]
    total = sum(query_lens)
    bad = [i for i in which if not 0 <= i < total]
    if bad:
        raise ValueError(f"logits indices {bad} are out of range: the pass has {total} tokens")
    return which
