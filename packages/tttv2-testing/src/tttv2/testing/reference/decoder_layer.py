"""Readable reference for one decoder layer (the math of ``DecoderLayerSpec``), float64.

One whole sequence at a time. Attention is :func:`reference_attention` with the reference
rotary embedding; norms, feed-forward and MoE are their references. Weights by the names
of a ``tttv2.blocks`` ``DecoderLayer.state_dict()`` (unfused): ``attn_norm.*``,
``attention.*``, ``post_attn_norm.*``, ``ffn_norm.*``, ``ffn.*``, ``post_ffn_norm.*``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import torch

from tttv2.core.specs import DecoderLayerSpec, MoESpec
from tttv2.testing.reference.attention import reference_attention
from tttv2.testing.reference.feed_forward import reference_feed_forward
from tttv2.testing.reference.moe import reference_moe
from tttv2.testing.reference.normalization import reference_norm
from tttv2.testing.reference.rope import reference_rope


def sub_weights(weights: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under ``prefix.`` with the prefix removed."""
    prefix = prefix + "."
    return {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}


def reference_decoder_layer(
    x: torch.Tensor,
    weights: Mapping[str, torch.Tensor],
    spec: DecoderLayerSpec,
    positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[S, hidden]`` -> ``[S, hidden]`` (float64) for one sequence ``x``."""
    x = x.detach().to(torch.float64)
    if positions is None:
        positions = torch.arange(x.shape[0])

    def norm(name: str, value: torch.Tensor) -> torch.Tensor:
        return reference_norm(value, sub_weights(weights, name), getattr(spec, name))

    def attention(value: torch.Tensor) -> torch.Tensor:
        rope = None
        if spec.attention.rope is not None:
            rope = partial(reference_rope, spec=spec.attention.rope)
        return reference_attention(
            value, sub_weights(weights, "attention"), spec.attention, rope=rope, positions=positions
        )

    def ffn(value: torch.Tensor) -> torch.Tensor:
        if isinstance(spec.ffn, MoESpec):
            return reference_moe(value, sub_weights(weights, "ffn"), spec.ffn)
        return reference_feed_forward(value, sub_weights(weights, "ffn"), spec.ffn)

    if spec.parallel:
        normed = norm("attn_norm", x)
        ffn_in = normed if spec.ffn_norm is None else norm("ffn_norm", x)
        return x + attention(normed) + ffn(ffn_in)

    a = attention(norm("attn_norm", x))
    if spec.post_attn_norm is not None:
        a = norm("post_attn_norm", a)
    h = x + a
    f = ffn(norm("ffn_norm", h))
    if spec.post_ffn_norm is not None:
        f = norm("post_ffn_norm", f)
    return h + f
