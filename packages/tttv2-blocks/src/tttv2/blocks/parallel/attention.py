"""ShardedAttention: one rank's query and KV heads of an attention block.

It *is* an :class:`~tttv2.blocks.Attention` built from the rank's local spec
(:class:`~tttv2.blocks.parallel.plan.AttentionShard`), so every execution mode's
implementation (prefill, paged decode, chunked, speculative, ...) runs unchanged over the
rank's own heads and its own paged KV cache of its KV heads. Only the output projection
differs: ``o_proj`` holds the rank's input columns, its partial products are summed over
the mesh (one all-reduce per block) and the bias, replicated, is added once afterwards.
Parameter names are the block's (``q_proj.weight``, ``o_proj.bias``, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from tttv2.blocks.building_blocks.attention import Attention
from tttv2.blocks.parallel.plan import AttentionShard
from tttv2.core import ExecutionStrategy
from tttv2.core.specs import AttentionSpec
from tttv2.hw import get_kernel
from tttv2.hw.mesh import DeviceMesh


class ShardedAttention(Attention):
    def __init__(
        self,
        shard: AttentionShard,
        mesh: DeviceMesh,
        device: torch.device | str | None = None,
        execution_strategy: ExecutionStrategy | str | None = None,
    ) -> None:
        if not isinstance(shard, AttentionShard):
            raise TypeError(f"ShardedAttention needs an AttentionShard, got {type(shard).__name__}")
        super().__init__(shard.local_spec, device, execution_strategy)
        self.shard = shard
        self.mesh = mesh
        self._row_linear: dict[str, Callable[..., Any]] = {}

    @property
    def full_spec(self) -> AttentionSpec:
        return self.shard.spec

    def output(self, attn: torch.Tensor) -> torch.Tensor:
        """``[T, H_rank, D]`` -> ``[T, hidden]``: this rank's partial ``o_proj`` product,
        summed over the mesh, plus the bias once."""
        x = attn.flatten(-2)
        linear = self._row_linear.get(x.device.type)
        if linear is None:
            linear = self._row_linear[x.device.type] = get_kernel("linear", x.device)
        out = self.mesh.all_reduce(linear(x, self.o_proj.weight, None))
        if self.o_proj.bias is not None:
            out = out + self.o_proj.bias
        return out

    def extra_repr(self) -> str:
        s = self.shard
        return f"heads={s.heads}, kv_heads={s.kv_heads}, kv_replicas={s.kv_replicas}, rank={s.rank}/{s.world_size}"
