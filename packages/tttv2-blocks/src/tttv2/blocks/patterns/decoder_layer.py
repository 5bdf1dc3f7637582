"""DecoderLayer: attention and feed-forward (or MoE) with their norms and residuals.

Sequential (pre-norm; with the optional sandwich norms of Gemma 2/3)::

    h = x + post_attn_norm(attention(attn_norm(x)))
    y = h + post_ffn_norm(ffn(ffn_norm(h)))

Parallel (GPT-J, Phi-2; ``ffn_norm`` absent means the FFN reads ``attn_norm(x)`` too)::

    y = attention(attn_norm(x)) + ffn(ffn_norm(x)) + x

(summed in Hugging Face's order, so float32 results agree bit for bit). Absent norms are
``None`` attributes. Parameters are named after the spec fields: ``attn_norm``,
``attention``, ``ffn_norm``, ``ffn``, ``post_attn_norm``, ``post_ffn_norm``.

A composite :class:`~tttv2.core.BaseModule`: the attention inside gets this layer's
execution strategy, and ``set_mode`` here switches it.

Fused decode: :meth:`DecoderLayer.decode_weights` hands tttv2-hw's ``decode_layers``
kernel op (:mod:`tttv2.hw.kernels.decode_layers`) the layer's weights and numbers as a
:class:`~tttv2.hw.kernels.DecodeLayer`, or says why the layer is not of the kind the op
computes (:meth:`DecoderLayer.decode_fusion_blocker` for the structural part).
"""

from __future__ import annotations

import torch
from torch import nn

from tttv2.blocks.building_blocks.attention import Attention, HeadRMSNorm
from tttv2.blocks.building_blocks.attention.implementations.decode import DecodeAttention
from tttv2.blocks.building_blocks.feed_forward import FeedForward
from tttv2.blocks.building_blocks.kv_cache import LayerKVCache
from tttv2.blocks.building_blocks.linear import Int8Linear
from tttv2.blocks.building_blocks.moe import MoE
from tttv2.blocks.building_blocks.normalization import RMSNorm, make_norm
from tttv2.core import BaseModule, BatchMetadata, ExecutionStrategy
from tttv2.core.specs import DecoderLayerSpec, MoESpec, NormSpec
from tttv2.hw.kernels.decode_layers import (
    DecodeLayer,
    DecodeLayerShape,
    DecodeLayerWeights,
    DecodeMoE,
)


def _optional_norm(spec: NormSpec | None, device: torch.device) -> torch.nn.Module | None:
    return make_norm(spec, device=device) if spec is not None else None


class DecoderLayer(BaseModule):
    specialized = False
    spec: DecoderLayerSpec

    def __init__(
        self,
        spec: DecoderLayerSpec,
        device: torch.device | str | None = None,
        execution_strategy: ExecutionStrategy | str | None = None,
    ) -> None:
        if not isinstance(spec, DecoderLayerSpec):
            raise TypeError(f"DecoderLayer needs a DecoderLayerSpec, got {type(spec).__name__}")
        super().__init__(spec, device, execution_strategy)
        dev = self.device
        self.attn_norm = make_norm(spec.attn_norm, device=dev)
        self.attention = Attention(spec.attention, dev, self.execution_strategy)
        self.post_attn_norm = _optional_norm(spec.post_attn_norm, dev)
        self.ffn_norm = _optional_norm(spec.ffn_norm, dev)
        self.ffn = (
            MoE(spec.ffn, device=dev)
            if isinstance(spec.ffn, MoESpec)
            else FeedForward(spec.ffn, device=dev)
        )
        self.post_ffn_norm = _optional_norm(spec.post_ffn_norm, dev)

    # -- fused decode ------------------------------------------------------------------
    def decode_fusion_blocker(self) -> str | None:
        """Why this layer is not the sequential pre-norm kind tttv2-hw's ``decode_layers`` op
        computes (None: it is): RMSNorms (the optional sandwich norms included), fused q/k/v
        (optionally with QK-norm), a fused gated :class:`FeedForward` or a :class:`MoE` of
        gated experts (its shared expert, if any, a fused gated FeedForward) and plain
        ``nn.Linear`` projections (or all Int8Linear, in a dense layer). Decided by the
        structure alone; the kernel may still refuse the dtypes or the activation."""
        attn, ffn = self.attention, self.ffn
        if self.spec.parallel:
            return "parallel attention and feed-forward (the kernel computes sequential layers)"
        norms = (self.attn_norm, self.ffn_norm, self.post_attn_norm, self.post_ffn_norm)
        required = type(self.attn_norm) is RMSNorm and type(self.ffn_norm) is RMSNorm
        if not required or any(type(n) not in (RMSNorm, type(None)) for n in norms):
            return "norms are not RMSNorm (the kernel computes RMSNorm only)"
        if attn.qkv_proj is None:
            return "attention without fused q/k/v"
        if (type(attn.q_norm), type(attn.k_norm)) not in (
            (HeadRMSNorm, HeadRMSNorm),
            (type(None), type(None)),
        ):
            return "QK-norm that is not a per-head RMSNorm of both q and k"
        if isinstance(ffn, MoE) and ffn.expert_weights() is None:
            return (
                "a mixture of experts whose experts are not gated, bias-free, plain nn.Linear"
                " projections without hooks"
            )
        dense = self._dense_ffn()
        if dense is not None and (
            type(dense) is not FeedForward or not dense.spec.gated or dense.gate_up_proj is None
        ):
            shared = " (the shared expert)" if isinstance(ffn, MoE) else ""
            return f"feed-forward{shared} is not a fused gated FeedForward"
        projections: list[nn.Module | None] = [attn.qkv_proj, attn.o_proj]
        if isinstance(dense, FeedForward):
            projections += [dense.gate_up_proj, dense.down_proj]
        kinds: set[type] = {type(m) for m in projections}
        if isinstance(ffn, MoE) and kinds != {nn.Linear}:
            return "a projection of a mixture-of-experts layer is not a plain nn.Linear"
        if kinds != {nn.Linear} and kinds != {Int8Linear}:
            return (
                "a projection is not a plain nn.Linear (or the projections are not all Int8Linear)"
            )
        return None

    def _dense_ffn(self) -> torch.nn.Module | None:
        """The dense feed-forward the ``decode_layers`` op computes: the layer's own, or a
        mixture of experts' shared expert (None without one)."""
        return self.ffn.shared_expert if isinstance(self.ffn, MoE) else self.ffn

    def decode_weights(self) -> DecodeLayer | str:
        """This layer as tttv2-hw's ``decode_layers`` op takes it (its current tensors, its
        numbers and its rotary table), or why it cannot be: :meth:`decode_fusion_blocker`,
        or attention not running the paged DECODE implementation now."""
        blocker = self.decode_fusion_blocker()
        if blocker is not None:
            return blocker
        attn, ffn = self.attention, self.ffn
        if type(attn.active_implementation) is not DecodeAttention:
            return "attention is not running the paged DECODE implementation"
        assert attn.qkv_proj is not None
        assert isinstance(self.attn_norm, RMSNorm) and isinstance(self.ffn_norm, RMSNorm)
        moe: DecodeMoE | None = None
        if isinstance(ffn, MoE):
            experts = ffn.expert_weights()
            assert experts is not None  # decode_fusion_blocker
            moe = DecodeMoE(experts, ffn.decode_routing, ffn.spec.expert.activation)
        dense = self._dense_ffn()
        assert dense is None or (isinstance(dense, FeedForward) and dense.gate_up_proj is not None)
        s, qkv, o = attn.spec, attn.qkv_proj, attn.o_proj
        gate_up = dense.gate_up_proj if dense is not None else None
        down = dense.down_proj if dense is not None else None
        activation = dense.spec.activation if dense is not None else moe.activation  # type: ignore[union-attr]
        # AttentionSpec.validate() / RopeSpec.validate() set these
        rotary_dim = s.rope.rotary_dim if s.rope is not None else 0
        assert s.num_kv_heads is not None and s.head_dim is not None and rotary_dim is not None
        scales: dict[str, torch.Tensor] = {}
        if isinstance(qkv, Int8Linear):  # all four are, in a dense layer (decode_fusion_blocker)
            assert isinstance(gate_up, Int8Linear) and isinstance(down, Int8Linear)
            scales = {"qkv_scale": qkv.scale, "o_scale": o.scale, "gate_up_scale": gate_up.scale,
                      "down_scale": down.scale}  # fmt: skip
        post_attn, post_ffn, q_norm, k_norm = (
            self.post_attn_norm,
            self.post_ffn_norm,
            attn.q_norm,
            attn.k_norm,
        )
        return DecodeLayer(
            DecodeLayerWeights(
                self.attn_norm.weight, qkv.weight, qkv.bias, o.weight, o.bias, self.ffn_norm.weight,
                _weight(gate_up), _bias(gate_up), _weight(down), _bias(down), **scales,
                post_attn_norm=_norm_weight(post_attn), post_ffn_norm=_norm_weight(post_ffn),
                q_norm=_norm_weight(q_norm), k_norm=_norm_weight(k_norm),
            ),
            DecodeLayerShape(
                s.num_heads, s.num_kv_heads, s.head_dim, rotary_dim,
                s.rope.interleaved if s.rope is not None else False, activation,
                self.attn_norm.eps, self.ffn_norm.eps, self.attn_norm.unit_offset, self.ffn_norm.unit_offset,
                s.softmax_scale, s.logit_softcap, s.sliding_window,
                _norm_eps(post_attn), _norm_eps(post_ffn), _norm_unit_offset(post_attn), _norm_unit_offset(post_ffn),
                _norm_eps(q_norm), _norm_unit_offset(q_norm),
            ),
            # RotaryRows declares a mutable ``spec: Hashable``; RotaryEmbedding's is a RopeSpec
            attn.rotary,  # type: ignore[arg-type]
            moe,
        )  # fmt: skip

    def forward(self, x: torch.Tensor, meta: BatchMetadata, cache: LayerKVCache) -> torch.Tensor:
        """``x [T, hidden]`` -> ``[T, hidden]``; writes this layer's K/V into ``cache``."""
        if self.spec.parallel:
            return self._parallel(x, meta, cache)
        h = self.attention(self.attn_norm(x), meta, cache)
        if self.post_attn_norm is not None:
            h = self.post_attn_norm(h)
        h = x + h
        assert self.ffn_norm is not None  # only a parallel layer may share attn_norm (no ffn_norm)
        y = self.ffn(self.ffn_norm(h))
        if self.post_ffn_norm is not None:
            y = self.post_ffn_norm(y)
        return h + y

    def _parallel(self, x: torch.Tensor, meta: BatchMetadata, cache: LayerKVCache) -> torch.Tensor:
        normed = self.attn_norm(x)
        attn = self.attention(normed, meta, cache)
        ffn = self.ffn(normed if self.ffn_norm is None else self.ffn_norm(x))
        return attn + ffn + x


def _weight(linear: nn.Module | None) -> torch.Tensor | None:
    """An optional projection's weight (a MoE layer without a shared expert has none)."""
    return None if linear is None else linear.weight  # type: ignore[return-value]  # nn.Linear / Int8Linear


def _bias(linear: nn.Module | None) -> torch.Tensor | None:
    return None if linear is None else linear.bias  # type: ignore[return-value]


def _norm_weight(norm: nn.Module | None) -> torch.Tensor | None:
    """An optional norm's weight for the ``decode_layers`` op (None: absent)."""
    return None if norm is None else norm.weight  # type: ignore[return-value]  # RMSNorm / HeadRMSNorm


def _norm_eps(norm: nn.Module | None) -> float:
    return 1e-6 if norm is None else float(norm.eps)  # type: ignore[arg-type]  # read only when present


def _norm_unit_offset(norm: nn.Module | None) -> bool:
    return False if norm is None else bool(norm.unit_offset)
