"""ShardedFeedForward: one rank's intermediate columns of a (gated) feed-forward.

A :class:`~tttv2.blocks.FeedForward` of the rank's local spec
(:class:`~tttv2.blocks.parallel.plan.FeedForwardShard`): ``gate_proj``/``up_proj`` hold the
rank's output rows (column-parallel), ``down_proj`` its input columns (row-parallel); the
partial results are summed over the mesh (one all-reduce) and ``down_proj``'s bias,
replicated, is added once afterwards. ``fuse_gate_up`` works on the rank's rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from tttv2.blocks.building_blocks.feed_forward import FeedForward
from tttv2.blocks.parallel.plan import FeedForwardShard
from tttv2.hw import get_kernel
from tttv2.hw.mesh import DeviceMesh


class ShardedFeedForward(FeedForward):
    def __init__(
        self, shard: FeedForwardShard, mesh: DeviceMesh, device: Any = None, reduce: bool = True
    ) -> None:
        if not isinstance(shard, FeedForwardShard):
            raise TypeError(
                f"ShardedFeedForward needs a FeedForwardShard, got {type(shard).__name__}"
            )
        super().__init__(shard.local_spec, device=device)
        self.shard = shard
        self.mesh = mesh
        self.reduce = reduce
        self._kernels: dict[str, Callable[..., Any]] = {}

    def partial(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's share of the output, before the sum over ranks and without the bias."""
        if x.shape[-1] != self.spec.hidden_dim:
            raise ValueError(
                f"FeedForward(hidden_dim={self.spec.hidden_dim}) got input of shape {tuple(x.shape)}"
            )
        linear = self._kernels.get(x.device.type)
        if linear is None:
            linear = self._kernels[x.device.type] = get_kernel("linear", x.device)
        if not self.spec.gated:
            assert self.up_proj is not None  # an ungated FeedForward is never fused
            h = self.act(linear(x, self.up_proj.weight, self.up_proj.bias))
        elif self.gate_up_proj is not None:
            gate, up = linear(x, self.gate_up_proj.weight, self.gate_up_proj.bias).chunk(2, dim=-1)
            h = self.act(gate) * up
        else:
            assert self.gate_proj is not None and self.up_proj is not None  # not fused
            gate = linear(x, self.gate_proj.weight, self.gate_proj.bias)
            h = self.act(gate) * linear(x, self.up_proj.weight, self.up_proj.bias)
        return linear(h, self.down_proj.weight, None)

    def add_bias(self, y: torch.Tensor) -> torch.Tensor:
        return y + self.down_proj.bias if self.down_proj.bias is not None else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.partial(x)
        if not self.reduce:
            return y
        return self.add_bias(self.mesh.all_reduce(y))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, columns={self.shard.columns}, rank={self.shard.rank}/{self.shard.world_size}"
