"""BatchMetadata: the description of one forward pass over a (ragged) batch.

Tokens of all sequences are flattened into one axis of length ``T`` in sequence order;
sequence ``i`` contributes ``query_lens[i]`` new tokens at positions
``context_lens[i] .. context_lens[i] + query_lens[i] - 1``. Keys and values live in a
block pool: sequence ``i``'s token at position ``p`` is stored in block
``block_tables[i, p // block_size]`` at offset ``p % block_size``; ``slot_mapping`` gives
that flat slot (``block * block_size + offset``) for every new token.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from tttv2.core.modes import ExecutionMode


@dataclass
class BatchMetadata:
    mode: ExecutionMode
    seq_ids: tuple[int, ...]
    query_lens: tuple[int, ...]
    context_lens: tuple[int, ...]
    block_size: int
    positions: torch.Tensor  # [T] int64
    slot_mapping: torch.Tensor  # [T] int64
    block_tables: torch.Tensor  # [B, max_blocks] int64, padded with 0 (masked by seq_lens)
    seq_lens: torch.Tensor  # [B] int64, context + query
    query_start: torch.Tensor  # [B + 1] int64, cumulative query_lens
    logits_indices: torch.Tensor  # [N] int64 indices into the T tokens that need logits

    @property
    def num_seqs(self) -> int:
        return len(self.seq_ids)

    @property
    def num_tokens(self) -> int:
        return sum(self.query_lens)

    @property
    def total_lens(self) -> tuple[int, ...]:
        """Per sequence: cached tokens plus new tokens, as Python ints (no device sync)."""
        return tuple(c + q for c, q in zip(self.context_lens, self.query_lens, strict=True))

    @property
    def max_seq_len(self) -> int:
        return max(self.total_lens)

    @property
    def is_decode(self) -> bool:
        """Every sequence brings exactly one new token."""
        return all(q == 1 for q in self.query_lens)

    @property
    def is_fresh_prefill(self) -> bool:
        """No sequence has cached context: attention needs only the new tokens."""
        return all(c == 0 for c in self.context_lens)

    def with_mode(self, mode: ExecutionMode) -> BatchMetadata:
        return BatchMetadata(**{**self.__dict__, "mode": mode})


def logits_positions(query_lens: tuple[int, ...], which: str) -> list[int]:
    """Token indices needing logits: ``"last"`` of each sequence or ``"all"``."""
    if which == "all":
        return list(range(sum(query_lens)))
    if which == "last":
        out, start = [], 0
        for q in query_lens:
            start += q
            out.append(start - 1)
        return out
    raise ValueError(f"logits={which!r} is invalid: expected 'last' or 'all'")


def int64_tensor(values: Iterable[int], device: torch.device) -> torch.Tensor:
    """``torch.tensor(values, dtype=torch.int64, device=device)`` for the few dozen ints a
    pass needs, built from an int64 array: a quarter of the cost of torch converting a list
    element by element (~6 us on a small CPU, several times that in a decode step whose
    weight streaming has evicted the caches)."""
    ints = array("q", values)
    if not ints:  # frombuffer refuses an empty buffer
        return torch.empty(0, dtype=torch.int64, device=device)
    flat = torch.frombuffer(ints, dtype=torch.int64)
    return flat if device.type == "cpu" else flat.to(device)
