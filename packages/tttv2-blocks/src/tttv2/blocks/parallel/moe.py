"""ShardedMoE: experts split across ranks (expert parallelism inside tensor parallelism).

Every rank routes every token with the replicated router (the same choice everywhere),
runs only its own experts (:class:`~tttv2.blocks.parallel.plan.MoEShard`: each expert whole
on one rank) on the rows routed to them, adds its part of the shared expert (split like a
feed-forward, scaled by the replicated ``shared_expert_gate``), and one all-reduce sums the
ranks' parts. Parameter names are :class:`~tttv2.blocks.MoE`'s, with the experts' global
indices (``experts.5.up_proj.weight`` on the rank that holds expert 5).
"""

from __future__ import annotations

from typing import Any

import torch

from tttv2.blocks.building_blocks.feed_forward import FeedForward
from tttv2.blocks.building_blocks.moe import MoE
from tttv2.blocks.building_blocks.moe.router import route
from tttv2.blocks.parallel.feed_forward import ShardedFeedForward
from tttv2.blocks.parallel.plan import MoEShard
from tttv2.hw.mesh import DeviceMesh


class ShardedMoE(MoE):
    def __init__(self, shard: MoEShard, mesh: DeviceMesh, device: Any = None) -> None:
        if not isinstance(shard, MoEShard):
            raise TypeError(f"ShardedMoE needs a MoEShard, got {type(shard).__name__}")
        torch.nn.Module.__init__(self)  # MoE's own constructor would build every expert
        spec = shard.spec
        self.spec = spec
        self.shard = shard
        self.mesh = mesh
        self.gate = torch.nn.Linear(spec.hidden_dim, spec.num_experts, bias=False, device=device)
        # experts by global id, only this rank's (MoE's ModuleList holds all of them)
        self.experts = torch.nn.ModuleDict(  # type: ignore[assignment]
            {str(e): FeedForward(spec.expert, device=device) for e in range(*shard.experts)}
        )
        self.shared_expert: ShardedFeedForward | None = (
            ShardedFeedForward(shard.shared, mesh, device=device, reduce=False)
            if shard.shared is not None
            else None
        )
        self.shared_expert_gate = (
            torch.nn.Linear(spec.hidden_dim, 1, bias=False, device=device)
            if spec.shared_expert_gate
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[-1] != self.spec.hidden_dim:
            raise ValueError(
                f"MoE(hidden_dim={self.spec.hidden_dim}) expects [T, hidden], got {tuple(x.shape)}"
            )
        weights, experts = route(
            self.gate(x), self.spec.top_k, self.spec.renormalize, self.spec.round_routing_weights
        )
        out = self._own_experts(x, weights, experts)
        scale = None
        if self.shared_expert is not None:
            shared = self.shared_expert.partial(x)
            if self.shared_expert_gate is not None:
                scale = torch.sigmoid(self.shared_expert_gate(x))
                shared = scale * shared
            out = out + shared
        out = self.mesh.all_reduce(out)
        if self.shared_expert is not None and self.shared_expert.down_proj.bias is not None:
            bias = self.shared_expert.down_proj.bias
            out = out + (scale * bias if scale is not None else bias)
        return out

    def _own_experts(
        self, x: torch.Tensor, weights: torch.Tensor, experts: torch.Tensor
    ) -> torch.Tensor:
        top_k = self.spec.top_k
        flat_experts = experts.reshape(-1)
        flat_weights = weights.reshape(-1)
        order = torch.argsort(flat_experts, stable=True)
        counts = torch.bincount(flat_experts, minlength=self.spec.num_experts).tolist()
        out = torch.zeros_like(x)
        start = 0
        first, last = self.shard.experts
        for expert_id, count in enumerate(counts):
            assignments = order[start : start + count]
            start += count
            if count == 0 or not first <= expert_id < last:
                continue
            tokens = assignments // top_k
            y = self.experts[str(expert_id)](x[tokens]) * flat_weights[assignments, None]  # type: ignore[call-overload]
            out.index_add_(0, tokens, y.to(out.dtype))
        return out

    def extra_repr(self) -> str:
        s = self.shard
        return f"{super().extra_repr()}, experts={s.experts}, rank={s.rank}/{s.world_size}"
