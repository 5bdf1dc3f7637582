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
"""

from __future__ import annotations

import torch

from tttv2.blocks.building_blocks.attention import Attention
from tttv2.blocks.building_blocks.feed_forward import FeedForward
from tttv2.blocks.building_blocks.kv_cache import LayerKVCache
from tttv2.blocks.building_blocks.moe import MoE
from tttv2.blocks.building_blocks.normalization import make_norm
from tttv2.core import BaseModule, BatchMetadata, ExecutionStrategy
from tttv2.core.specs import DecoderLayerSpec, MoESpec, NormSpec


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
        self.ffn = MoE(spec.ffn, device=dev) if isinstance(spec.ffn, MoESpec) else FeedForward(spec.ffn, device=dev)
        self.post_ffn_norm = _optional_norm(spec.post_ffn_norm, dev)

    def forward(self, x: torch.Tensor, meta: BatchMetadata, cache: LayerKVCache) -> torch.Tensor:
        """``x [T, hidden]`` -> ``[T, hidden]``; writes this layer's K/V into ``cache``."""
        if self.spec.parallel:
            return self._parallel(x, meta, cache)
        h = self.attention(self.attn_norm(x), meta, cache)
        if self.post_attn_norm is not None:
            h = self.post_attn_norm(h)
        h = x + h
        y = self.ffn(self.ffn_norm(h))
        if self.post_ffn_norm is not None:
            y = self.post_ffn_norm(y)
        return h + y

    def _parallel(self, x: torch.Tensor, meta: BatchMetadata, cache: LayerKVCache) -> torch.Tensor:
        normed = self.attn_norm(x)
        attn = self.attention(normed, meta, cache)
        ffn = self.ffn(normed if self.ffn_norm is None else self.ffn_norm(x))
        return attn + ffn + x
