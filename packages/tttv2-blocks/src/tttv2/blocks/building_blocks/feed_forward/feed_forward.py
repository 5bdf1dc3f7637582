"""FeedForward: the MLP of a transformer layer.

Gated (SwiGLU with ``silu``, GeGLU with ``gelu_tanh``)::

    y = down_proj(act(gate_proj(x)) * up_proj(x))

Plain (GPT-2 and friends)::

    y = down_proj(act(up_proj(x)))

Projections are ``nn.Linear`` in Hugging Face layout (``weight [out, in]``), with biases
when ``spec.bias``, computed by tttv2-hw's ``linear`` kernel for the input's device.
:meth:`FeedForward.fuse_gate_up` replaces ``gate_proj`` and ``up_proj`` by one
``gate_up_proj`` (rows ``[gate; up]``) so the two matmuls become one.
"""

from __future__ import annotations

from typing import Any

import torch

from tttv2.blocks.building_blocks.feed_forward.activations import activation
from tttv2.blocks.building_blocks.linear import KernelLinear
from tttv2.core.specs import FeedForwardSpec


class FeedForward(torch.nn.Module):
    def __init__(
        self, spec: FeedForwardSpec, device: Any = None, execution_strategy: Any = None
    ) -> None:
        super().__init__()
        if not isinstance(spec, FeedForwardSpec):
            raise TypeError(f"FeedForward needs a FeedForwardSpec, got {type(spec).__name__}")
        self.spec = spec
        self.act = activation(spec.activation)
        hidden, inter, bias = spec.hidden_dim, spec.intermediate_dim, spec.bias
        self.gate_proj: torch.nn.Linear | None = (
            torch.nn.Linear(hidden, inter, bias=bias, device=device) if spec.gated else None
        )
        self.up_proj: torch.nn.Linear | None = torch.nn.Linear(
            hidden, inter, bias=bias, device=device
        )
        self.down_proj = torch.nn.Linear(inter, hidden, bias=bias, device=device)
        self.gate_up_proj: torch.nn.Linear | None = None
        self._linear = KernelLinear()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.spec.hidden_dim:
            raise ValueError(
                f"FeedForward(hidden_dim={self.spec.hidden_dim}) got input of shape {tuple(x.shape)}"
            )
        linear = self._linear
        if not self.spec.gated:
            assert self.up_proj is not None  # fuse_gate_up() refuses an ungated FeedForward
            return linear(self.down_proj, self.act(linear(self.up_proj, x)))
        if self.gate_up_proj is not None:
            gate, up = linear(self.gate_up_proj, x).chunk(2, dim=-1)
        else:
            assert self.gate_proj is not None and self.up_proj is not None  # not fused
            gate, up = linear(self.gate_proj, x), linear(self.up_proj, x)
        return linear(self.down_proj, self.act(gate) * up)

    @torch.no_grad()
    def fuse_gate_up(self) -> None:
        """Concatenate ``gate_proj`` and ``up_proj`` into ``gate_up_proj`` (one matmul).

        The separate projections are removed, so the weights exist once. Call after
        loading weights; a no-op when already fused."""
        if not self.spec.gated:
            raise ValueError("fuse_gate_up() needs a gated FeedForward (spec.gated=True)")
        if self.gate_up_proj is not None:
            return
        gate, up = self.gate_proj, self.up_proj
        assert gate is not None and up is not None  # gated and not yet fused
        keep_grad = gate.weight.requires_grad
        # built on the meta device, then given the concatenations: no random initialisation
        # of a weight about to be replaced (0.5 s of a 1.5 s SmolLM2-135M load), no extra copy
        fused = torch.nn.Linear(
            self.spec.hidden_dim, 2 * self.spec.intermediate_dim, bias=self.spec.bias, device="meta"
        )
        fused.weight = torch.nn.Parameter(
            torch.cat((gate.weight, up.weight), dim=0), requires_grad=keep_grad
        )
        if self.spec.bias:
            fused.bias = torch.nn.Parameter(
                torch.cat((gate.bias, up.bias), dim=0), requires_grad=keep_grad
            )
        self.gate_proj = None
        self.up_proj = None
        self.gate_up_proj = fused

    @property
    def is_fused(self) -> bool:
        return self.gate_up_proj is not None

    def extra_repr(self) -> str:
        s = self.spec
        return f"{s.hidden_dim} -> {s.intermediate_dim}, activation={s.activation!r}, gated={s.gated}, bias={s.bias}"
