"""Causal self-attention: one block for MHA, GQA and MQA (through ``num_kv_heads``).

The module owns the weights and the per-token math that does not depend on the execution
mode: projections, QK-norm, rotary embedding and the output projection. How queries meet
keys (one-shot prefill, paged decode, chunked prefill, ...) is an implementation chosen by
the execution strategy; see ``implementations/``. Every implementation calls
:meth:`Attention.project`, writes the new K/V into the cache, attends and calls
:meth:`Attention.output`.

Projections run through tttv2-hw's ``linear`` kernel for the input's device (on CPU a
matrix-vector product for a single token). With fused q/k/v and no QK-norm, queries and
keys are adjacent columns of one product and are rotated by one kernel call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from tttv2.blocks.building_blocks.attention.qk_norm import HeadRMSNorm
from tttv2.blocks.building_blocks.linear import KernelLinear
from tttv2.blocks.building_blocks.rope import RotaryEmbedding
from tttv2.blocks.building_blocks.rope.rows import pass_cos_sin
from tttv2.core import BaseModule, ExecutionMode, ExecutionStrategy, register_module_class
from tttv2.core.specs import AttentionSpec
from tttv2.hw import get_kernel
from tttv2.hw.device_params import device_params


class Attention(BaseModule):
    """``forward(x [T, hidden], meta: BatchMetadata, cache: LayerKVCache) -> [T, hidden]``.

    Parameters use the Hugging Face layout so checkpoints copy 1:1: ``q_proj``
    ``[H*D, hidden]``, ``k_proj`` / ``v_proj`` ``[Hkv*D, hidden]``, ``o_proj``
    ``[hidden, H*D]`` (``nn.Linear``; biases per ``spec.qkv_bias`` / ``spec.out_bias``),
    ``q_norm.weight`` / ``k_norm.weight`` ``[D]`` with ``spec.qk_norm``.
    :meth:`fuse_qkv` replaces q/k/v by one ``qkv_proj``.
    """

    spec: AttentionSpec

    def __init__(
        self,
        spec: AttentionSpec,
        device: torch.device | str | None = None,
        execution_strategy: ExecutionStrategy | str | None = None,
    ) -> None:
        if not isinstance(spec, AttentionSpec):
            raise TypeError(
                f"{type(self).__name__} needs an AttentionSpec, got {type(spec).__name__}"
            )
        super().__init__(spec, device, execution_strategy)
        hidden, H, Hkv, D = spec.hidden_dim, spec.num_heads, spec.num_kv_heads, spec.head_dim
        assert Hkv is not None and D is not None  # AttentionSpec.validate() resolved both
        dev = self.device
        self.q_proj: nn.Linear | None = nn.Linear(hidden, H * D, bias=spec.qkv_bias, device=dev)
        self.k_proj: nn.Linear | None = nn.Linear(hidden, Hkv * D, bias=spec.qkv_bias, device=dev)
        self.v_proj: nn.Linear | None = nn.Linear(hidden, Hkv * D, bias=spec.qkv_bias, device=dev)
        self.qkv_proj: nn.Linear | None = None
        self.o_proj = nn.Linear(H * D, hidden, bias=spec.out_bias, device=dev)
        offset = spec.qk_norm_unit_offset
        self.q_norm = (
            HeadRMSNorm(D, spec.qk_norm_eps, dev, unit_offset=offset) if spec.qk_norm else None
        )
        self.k_norm = (
            HeadRMSNorm(D, spec.qk_norm_eps, dev, unit_offset=offset) if spec.qk_norm else None
        )
        self.rotary = RotaryEmbedding(spec.rope) if spec.rope is not None else None
        self._linear = KernelLinear()
        self._rotate: dict[str, Callable[..., Any]] = {}  # device type -> apply_rotary kernel

    # -- per-token math shared by every mode ---------------------------------------------
    def project(
        self, x: torch.Tensor, positions: torch.Tensor, seq_len: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x [T, hidden]`` -> ``q [T, H, D]``, ``k, v [T, Hkv, D]``: projections, then
        QK-norm, then rotary embedding at ``positions [T]``. ``seq_len`` is the longest
        sequence of the batch (``meta.max_seq_len``; length-dependent RoPE scalings use it)."""
        spec = self.spec
        H, Hkv, D = spec.num_heads, spec.num_kv_heads, spec.head_dim
        assert Hkv is not None and D is not None  # AttentionSpec.validate() resolved both
        linear = self._linear
        if self.qkv_proj is not None:
            qkv = linear(self.qkv_proj, x)
            if self.q_norm is None and self.rotary is not None:
                return self._rotate_fused(qkv, positions, seq_len)
            q, k, v = qkv.split((H * D, Hkv * D, Hkv * D), dim=-1)
        else:
            assert self.q_proj is not None and self.k_proj is not None and self.v_proj is not None
            q, k, v = linear(self.q_proj, x), linear(self.k_proj, x), linear(self.v_proj, x)
        q, k, v = q.unflatten(-1, (H, D)), k.unflatten(-1, (Hkv, D)), v.unflatten(-1, (Hkv, D))
        if self.q_norm is not None and self.k_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.rotary is not None:
            q, k = self.rotary.apply(q, k, positions, seq_len=seq_len)
        return q, k, v

    def _rotate_fused(
        self, qkv: torch.Tensor, positions: torch.Tensor, seq_len: int | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v from the fused product ``[T, (H + 2 Hkv) D]``: the q and k heads are
        adjacent, so one rotation covers both (the same arithmetic as rotating each)."""
        spec, rotary = self.spec, self.rotary
        assert rotary is not None
        H, Hkv, D = spec.num_heads, spec.num_kv_heads, spec.head_dim
        assert Hkv is not None and D is not None  # AttentionSpec.validate() resolved both
        T = qkv.shape[0]
        if positions.dim() != 1 or positions.shape[0] != T:
            raise ValueError(
                f"{type(self).__name__}: positions must be [T={T}], got {tuple(positions.shape)}"
            )
        device = qkv.device
        cos, sin = pass_cos_sin(rotary, positions, device, qkv.dtype, seq_len)
        rotate = self._rotate.get(device.type)
        if rotate is None:
            rotate = self._rotate[device.type] = get_kernel("apply_rotary", device)
        qk = rotate(
            qkv[:, : (H + Hkv) * D].view(T, H + Hkv, D),
            cos,
            sin,
            interleaved=rotary.spec.interleaved,
        )
        return qk[:, :H], qk[:, H:], qkv[:, (H + Hkv) * D :].view(T, Hkv, D)

    def output(self, attn: torch.Tensor) -> torch.Tensor:
        """``[T, H, D]`` attention result -> ``[T, hidden]``."""
        return self._linear(self.o_proj, attn.flatten(-2))

    # -- load-time transformations ---------------------------------------------------------
    def apply_hw_params(self, mode: ExecutionMode | str = ExecutionMode.DECODE) -> None:
        """Apply the load-time choices tttv2-hw makes for this device and spec (today:
        ``fuse_qkv``). Call after the weights are loaded."""
        params = device_params("attention", mode, self.device, self.spec)
        if params is not None and params.fuse_qkv:  # type: ignore[attr-defined]
            self.fuse_qkv()

    @property
    def qkv_fused(self) -> bool:
        return self.qkv_proj is not None

    @torch.no_grad()
    def fuse_qkv(self) -> None:
        """Replace ``q_proj``, ``k_proj``, ``v_proj`` by one ``qkv_proj`` whose weight (and
        bias) is their concatenation: the same math in one matmul. The separate weights are
        released, so the weights are still stored once. Idempotent."""
        if self.qkv_proj is not None:
            return
        q, k, v = self.q_proj, self.k_proj, self.v_proj
        assert q is not None and k is not None and v is not None
        keep_grad = q.weight.requires_grad
        fused = nn.Linear(
            q.in_features,
            q.out_features + 2 * k.out_features,
            bias=self.spec.qkv_bias,
            device="meta",
        )
        fused.weight = nn.Parameter(
            torch.cat([q.weight, k.weight, v.weight]), requires_grad=keep_grad
        )
        if self.spec.qkv_bias:
            fused.bias = nn.Parameter(torch.cat([q.bias, k.bias, v.bias]), requires_grad=keep_grad)
        self.q_proj = self.k_proj = self.v_proj = None
        self.qkv_proj = fused


#: The same block; the spec's ``num_kv_heads`` makes it multi-head, grouped-query or multi-query.
MultiHeadAttention = Attention
GroupedQueryAttention = Attention

register_module_class(AttentionSpec, Attention)
