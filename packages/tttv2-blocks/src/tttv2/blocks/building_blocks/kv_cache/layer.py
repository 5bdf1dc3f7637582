"""One layer's keys and values in a block pool, written and read through block tables."""

from __future__ import annotations

import torch


class LayerKVCache:
    """Key and value pools ``[num_blocks, block_size, num_kv_heads, head_dim]`` of one layer.

    A token's K/V lives at a flat *slot* ``block * block_size + offset``; which blocks
    belong to which sequence is decided by :class:`tttv2.core.KVBlockManager` and arrives
    here as ``BatchMetadata.slot_mapping`` (writes) and ``block_tables`` (reads).
    """

    def __init__(self, key: torch.Tensor, value: torch.Tensor) -> None:
        if key.dim() != 4 or value.shape != key.shape:
            raise ValueError(
                "LayerKVCache needs key and value pools of equal shape "
                f"[num_blocks, block_size, num_kv_heads, head_dim]; got {tuple(key.shape)} and {tuple(value.shape)}"
            )
        if key.dtype != value.dtype or key.device != value.device:
            raise ValueError(
                f"LayerKVCache: key ({key.dtype}, {key.device}) and value ({value.dtype}, {value.device}) differ"
            )
        if not (key.is_contiguous() and value.is_contiguous()):
            raise ValueError("LayerKVCache: key and value pools must be contiguous")
        self.key = key
        self.value = value
        # the pools seen as [slots, num_kv_heads, head_dim], as writes address them
        self._key_slots = key.view(-1, *key.shape[2:])
        self._value_slots = value.view(-1, *value.shape[2:])

    @classmethod
    def empty(
        cls,
        num_blocks: int,
        block_size: int,
        num_kv_heads: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device | str,
    ) -> LayerKVCache:
        """Zero-filled pools (zeros, so unused slots never hold NaN or Inf)."""
        for name, v in (
            ("num_blocks", num_blocks),
            ("block_size", block_size),
            ("num_kv_heads", num_kv_heads),
            ("head_dim", head_dim),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(
                    f"LayerKVCache.{name}={v!r} is invalid: expected a positive integer"
                )
        shape = (num_blocks, block_size, num_kv_heads, head_dim)
        return cls(
            torch.zeros(shape, dtype=dtype, device=device),
            torch.zeros(shape, dtype=dtype, device=device),
        )

    # -- shape ------------------------------------------------------------------------
    @property
    def num_blocks(self) -> int:
        return self.key.shape[0]

    @property
    def block_size(self) -> int:
        return self.key.shape[1]

    @property
    def num_kv_heads(self) -> int:
        return self.key.shape[2]

    @property
    def head_dim(self) -> int:
        return self.key.shape[3]

    @property
    def dtype(self) -> torch.dtype:
        return self.key.dtype

    @property
    def device(self) -> torch.device:
        return self.key.device

    @property
    def memory_bytes(self) -> int:
        return 2 * self.key.numel() * self.key.element_size()

    # -- access -----------------------------------------------------------------------
    def write(self, k: torch.Tensor, v: torch.Tensor, slot_mapping: torch.Tensor) -> None:
        """Store ``k, v [T, num_kv_heads, head_dim]`` at the flat slots ``slot_mapping [T]``
        (cast to the cache dtype; detached: the cache is inference state, not a graph)."""
        shape = (self.num_kv_heads, self.head_dim)
        if k.dim() != 3 or tuple(k.shape[1:]) != shape or v.shape != k.shape:
            raise ValueError(
                f"LayerKVCache.write: k and v must be [T, {shape[0]}, {shape[1]}]; "
                f"got {tuple(k.shape)} and {tuple(v.shape)}"
            )
        if slot_mapping.shape != (k.shape[0],):
            raise ValueError(
                f"LayerKVCache.write: slot_mapping must be [T={k.shape[0]}], got {tuple(slot_mapping.shape)}"
            )
        dtype = self.key.dtype
        k = k if k.dtype == dtype and not k.requires_grad else k.detach().to(dtype)
        v = v if v.dtype == dtype and not v.requires_grad else v.detach().to(dtype)
        self._key_slots.index_copy_(0, slot_mapping, k)
        self._value_slots.index_copy_(0, slot_mapping, v)

    def read(
        self, block_table: torch.Tensor, start: int, end: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values ``[end - start, num_kv_heads, head_dim]`` of the tokens at positions
        ``start .. end-1`` of the sequence owning ``block_table [W]``.

        Copies only the blocks covering that range (only the range itself when it lies in
        one block, as in the contiguous layout), never the pool."""
        if not 0 <= start < end:
            raise ValueError(
                f"LayerKVCache.read: need 0 <= start < end, got start={start}, end={end}"
            )
        bs = self.block_size
        first, last = start // bs, (end - 1) // bs
        if last >= block_table.shape[0]:
            raise ValueError(
                f"LayerKVCache.read: positions up to {end - 1} need {last + 1} blocks; "
                f"the block table has {block_table.shape[0]}"
            )
        lo = start - first * bs
        if first == last:
            idx = block_table[first : first + 1]
            k = self.key[:, lo : lo + end - start].index_select(0, idx)[0]
            v = self.value[:, lo : lo + end - start].index_select(0, idx)[0]
            return k, v
        idx = block_table[first : last + 1]
        k = self.key.index_select(0, idx).flatten(0, 1)[lo : lo + end - start]
        v = self.value.index_select(0, idx).flatten(0, 1)[lo : lo + end - start]
        return k, v

    def __repr__(self) -> str:
        return (
            f"LayerKVCache(num_blocks={self.num_blocks}, block_size={self.block_size}, "
            f"num_kv_heads={self.num_kv_heads}, head_dim={self.head_dim}, dtype={self.dtype}, device={self.device})"
        )
