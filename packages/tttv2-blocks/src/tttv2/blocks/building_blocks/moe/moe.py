"""MoE: a top-k routed mixture of gated experts, with an optional shared expert.

::

    weights, experts = route(gate(x))                 # [T, k] each
    y[t] = sum_j weights[t, j] * experts[experts[t, j]](x[t])
    y   += sigmoid(shared_expert_gate(x)) * shared_expert(x)   # when configured

Compute scales with the tokens routed, not tokens x experts: the ``T * k`` (token, expert)
assignments are sorted by expert id, each expert runs once on exactly the rows routed to
it, and the weighted results are added back with ``index_add_``. Experts nobody chose are
not run at all.

Fused decode (tttv2-hw's ``decode_layers`` op, :class:`~tttv2.hw.kernels.DecodeMoE`): the
kernel runs the experts and the shared expert itself and calls :meth:`MoE.decode_routing`,
this block's router, for the routing, so both paths choose the same experts with the same
weights (``torch.topk``'s tie order included).

Parameters (Hugging Face names, so a loader maps Mixtral / Qwen-MoE tensors one to one):
``gate`` (router, ``nn.Linear(hidden, num_experts, bias=False)``),
``experts.{i}.gate_proj/up_proj/down_proj`` (one :class:`FeedForward` per expert),
``shared_expert.*`` and ``shared_expert_gate`` (``nn.Linear(hidden, 1, bias=False)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tttv2.blocks.building_blocks.feed_forward import FeedForward
from tttv2.blocks.building_blocks.moe.router import route
from tttv2.core.specs import MoESpec
from tttv2.core.torch_internals import has_forward_hooks
from tttv2.hw import get_kernel
from tttv2.hw.kernels.decode_layers import DecodeRouting


class MoE(torch.nn.Module):
    def __init__(self, spec: MoESpec, device: Any = None, execution_strategy: Any = None) -> None:
        super().__init__()
        if not isinstance(spec, MoESpec):
            raise TypeError(f"MoE needs a MoESpec, got {type(spec).__name__}")
        self.spec = spec
        self.gate = torch.nn.Linear(spec.hidden_dim, spec.num_experts, bias=False, device=device)
        self.experts = torch.nn.ModuleList(
            FeedForward(spec.expert, device=device) for _ in range(spec.num_experts)
        )
        self.shared_expert = (
            FeedForward(spec.shared_expert, device=device) if spec.shared_expert else None
        )
        self.shared_expert_gate = (
            torch.nn.Linear(spec.hidden_dim, 1, bias=False, device=device)
            if spec.shared_expert_gate
            else None
        )
        self._routed_kernels: dict[str, Any] = {}  # device type -> the routed_experts kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[-1] != self.spec.hidden_dim:
            raise ValueError(
                f"MoE(hidden_dim={self.spec.hidden_dim}) expects [T, hidden], got {tuple(x.shape)}"
            )
        rows, weights, counts = self.assignments(x)
        out = self._run_experts(x, rows, weights, counts.tolist())
        if self.shared_expert is not None:
            shared = self.shared_expert(x)
            if self.shared_expert_gate is not None:
                shared = torch.sigmoid(self.shared_expert_gate(x)) * shared
            out = out + shared
        return out

    def assignments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The router's decision for ``x [T, hidden]``: ``(rows [T*k] int64, weights [T*k]
        float32, counts [num_experts] int64)``, one (token, expert) assignment per entry,
        grouped by expert in ascending id (stable within a group), ``counts`` per expert."""
        top_k = self.spec.top_k
        weights, experts = route(
            self.gate(x), top_k, self.spec.renormalize, self.spec.round_routing_weights
        )
        flat_experts = experts.reshape(-1)  # assignment a = token * top_k + slot
        order = torch.argsort(flat_experts, stable=True)  # assignments grouped by expert
        counts = torch.bincount(flat_experts, minlength=self.spec.num_experts)
        return order // top_k, weights.reshape(-1)[order], counts

    def decode_routing(self, x: torch.Tensor) -> DecodeRouting:
        """The routing of ``x`` for tttv2-hw's ``decode_layers`` op (see the module
        docstring): :meth:`assignments` and the shared expert's gate as ``forward`` computes
        them."""
        rows, weights, counts = self.assignments(x)
        gate = self.shared_expert_gate
        shared_gate = torch.sigmoid(gate(x)) if gate is not None else None
        return DecodeRouting(rows, weights, counts, shared_gate)

    def _run_experts(
        self, x: torch.Tensor, rows: torch.Tensor, weights: torch.Tensor, counts: list[int]
    ) -> torch.Tensor:
        fused = self._run_kernel(x, rows, weights, counts)
        if fused is not None:
            return fused
        out = torch.zeros_like(x)
        start = 0
        for expert_id, count in enumerate(counts):
            if count == 0:
                continue
            tokens = rows[start : start + count]
            y = self.experts[expert_id](x[tokens]) * weights[start : start + count, None]
            start += count
            out.index_add_(0, tokens, y.to(out.dtype))
        return out

    def expert_weights(
        self, ids: Sequence[int] | None = None
    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None:
        """The ``(gate, up, down)`` weights of the experts ``ids`` (default: all, by expert
        id), or None unless they are gated, bias-free and plain ``nn.Linear`` projections
        without hooks (what tttv2-hw's expert kernels compute)."""
        if not self.spec.expert.gated or self.spec.expert.bias:
            return None
        out = []
        for e in range(len(self.experts)) if ids is None else ids:
            expert = self.experts[e]
            assert isinstance(expert, FeedForward)  # built so in __init__
            weights_of = _expert_weights(expert)
            if weights_of is None:
                return None
            out.append(weights_of)
        return out

    def _run_kernel(
        self, x: torch.Tensor, rows: torch.Tensor, weights: torch.Tensor, counts: list[int]
    ) -> torch.Tensor | None:
        """All chosen experts in one ``routed_experts`` kernel call, or None where it does
        not serve (the kernel declines, or an expert is not plain linear projections)."""
        chosen = [e for e, count in enumerate(counts) if count]
        experts = self.expert_weights(chosen)
        if experts is None:
            return None
        kernel = self._routed_kernels.get(x.device.type)
        if kernel is None:
            kernel = self._routed_kernels[x.device.type] = get_kernel("routed_experts", x.device)
        return kernel(
            x, rows, weights, [counts[e] for e in chosen], experts, self.spec.expert.activation
        )

    def extra_repr(self) -> str:
        s = self.spec
        return f"num_experts={s.num_experts}, top_k={s.top_k}, renormalize={s.renormalize}"


def _expert_weights(expert: FeedForward) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """``(gate, up, down)`` weights of a gated expert whose projections are plain
    ``nn.Linear`` without hooks (a fused ``gate_up_proj`` split into views), else None."""
    if has_forward_hooks(expert):
        return None
    layers = [expert.gate_up_proj] if expert.is_fused else [expert.gate_proj, expert.up_proj]
    layers.append(expert.down_proj)
    if any(type(layer) is not torch.nn.Linear or has_forward_hooks(layer) for layer in layers):
        return None
    if expert.gate_up_proj is not None:
        gate, up = expert.gate_up_proj.weight.chunk(2, dim=0)
        return gate, up, expert.down_proj.weight
    assert expert.gate_proj is not None and expert.up_proj is not None  # gated, not fused
    return expert.gate_proj.weight, expert.up_proj.weight, expert.down_proj.weight
