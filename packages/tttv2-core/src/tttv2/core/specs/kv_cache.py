"""KV-cache spec: what one layer's cache must hold (the math, not the memory layout)."""

from __future__ import annotations

from dataclasses import dataclass

from tttv2.core.specs.base import ModuleSpec


@dataclass(frozen=True)
class KVCacheSpec(ModuleSpec):
    """Keys and values of ``num_kv_heads`` heads of ``head_dim`` for up to ``max_seq_len``
    tokens per sequence and ``max_batch`` sequences. Block size and dtype are hardware
    parameters (tttv2-hw), not part of the spec."""

    kind = "kv_cache"

    num_kv_heads: int
    head_dim: int
    max_seq_len: int
    max_batch: int = 1

    def validate(self) -> None:
        self._positive("num_kv_heads", "head_dim", "max_seq_len", "max_batch")
