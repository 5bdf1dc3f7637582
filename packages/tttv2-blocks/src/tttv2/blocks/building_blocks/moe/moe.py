"""MoE: a top-k routed mixture of gated experts, with an optional shared expert.

::

    weights, experts = route(gate(x))                 # [T, k] each
    y[t] = sum_j weights[t, j] * experts[experts[t, j]](x[t])
    y   += sigmoid(shared_expert_gate(x)) * shared_expert(x)   # when configured

Compute scales with the tokens routed, not tokens x experts: the ``T * k`` (token, expert)
assignments are sorted by expert id, each expert runs once on exactly the rows routed to
it, and the weighted results are added back with ``index_add_``. Experts nobody chose are
not run at all.

Parameters (Hugging Face names, so a loader maps Mixtral / Qwen-MoE tensors one to one):
``gate`` (router, ``nn.Linear(hidden, num_experts, bias=False)``),
``experts.{i}.gate_proj/up_proj/down_proj`` (one :class:`FeedForward` per expert),
``shared_expert.*`` and ``shared_expert_gate`` (``nn.Linear(hidden, 1, bias=False)``).
"""

from __future__ import annotations

from typing import Any

import torch

from tttv2.blocks.building_blocks.feed_forward import FeedForward
from tttv2.blocks.building_blocks.moe.router import route
from tttv2.core.specs import MoESpec


class MoE(torch.nn.Module):
    def __init__(self, spec: MoESpec, device: Any = None, execution_strategy: Any = None) -> None:
        super().__init__()
        if not isinstance(spec, MoESpec):
            raise TypeError(f"MoE needs a MoESpec, got {type(spec).__name__}")
        self.spec = spec
        self.gate = torch.nn.Linear(spec.hidden_dim, spec.num_experts, bias=False, device=device)
        self.experts = torch.nn.ModuleList(FeedForward(spec.expert, device=device) for _ in range(spec.num_experts))
        self.shared_expert = FeedForward(spec.shared_expert, device=device) if spec.shared_expert else None
        self.shared_expert_gate = (
            torch.nn.Linear(spec.hidden_dim, 1, bias=False, device=device) if spec.shared_expert_gate else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[-1] != self.spec.hidden_dim:
            raise ValueError(f"MoE(hidden_dim={self.spec.hidden_dim}) expects [T, hidden], got {tuple(x.shape)}")
        weights, experts = route(self.gate(x), self.spec.top_k, self.spec.renormalize)
        out = self._run_experts(x, weights, experts)
        if self.shared_expert is not None:
            shared = self.shared_expert(x)
            if self.shared_expert_gate is not None:
                shared = torch.sigmoid(self.shared_expert_gate(x)) * shared
            out = out + shared
        return out

    def _run_experts(self, x: torch.Tensor, weights: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
        top_k = self.spec.top_k
        flat_experts = experts.reshape(-1)  # assignment a = token * top_k + slot
        flat_weights = weights.reshape(-1)
        order = torch.argsort(flat_experts, stable=True)  # assignments grouped by expert
        counts = torch.bincount(flat_experts, minlength=self.spec.num_experts).tolist()
        out = torch.zeros_like(x)
        start = 0
        for expert_id, count in enumerate(counts):
            if count == 0:
                continue
            assignments = order[start : start + count]
            start += count
            tokens = assignments // top_k
            y = self.experts[expert_id](x[tokens]) * flat_weights[assignments, None]
            out.index_add_(0, tokens, y.to(out.dtype))
        return out

    def extra_repr(self) -> str:
        s = self.spec
        return f"num_experts={s.num_experts}, top_k={s.top_k}, renormalize={s.renormalize}"
