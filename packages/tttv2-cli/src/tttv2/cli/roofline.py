"""The memory-bandwidth roofline of decoding: every decode step reads the weights it uses
once and each sequence's cached keys and values; bandwidth over those bytes bounds tokens/s.

A mixture-of-experts layer uses only the experts its tokens are routed to: its router,
shared expert and the chosen experts are read, the other experts are not. One token picks
``top_k`` of ``num_experts``; ``batch`` tokens pick ``E * (1 - (1 - k/E) ** batch)`` distinct
experts on average when routing is uniform (at most ``min(E, batch * k)``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from tttv2.core.specs import FeedForwardSpec, ModelSpec, MoESpec


@dataclass
class Roofline:
    bandwidth_bytes_per_s: float
    weight_bytes: int
    kv_bytes_per_step: int
    bytes_per_decode_step: int
    decode_tokens_per_s: float  # batch * bandwidth / bytes per step

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def weight_bytes_read_per_step(model: torch.nn.Module, spec: ModelSpec, batch: int = 1) -> int:
    """Bytes of every distinct parameter as stored (a tied embedding counts once; int8
    weights one byte each plus their float32 scales) less what a step of ``batch`` tokens
    does not read: an untied embedding table (a step gathers only a few of its rows), the
    LM head's ``weight`` when the head computes from its own int8 codes (the ``int8``
    precision preset; tied: the embedding table), and the experts of MoE layers that no
    token is routed to (see :func:`active_experts`)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel() * p.element_size()
    if not spec.lm_head.tied:
        total -= spec.embedding.vocab_size * spec.embedding.hidden_dim * _param_itemsize(model)
    head = getattr(model, "lm_head", None)
    if getattr(head, "int8_weight", None) is not None:
        unread = head.weight  # type: ignore[union-attr]
        total -= unread.numel() * unread.element_size()
    itemsize = _param_itemsize(model)
    for layer in spec.layers:
        if isinstance(layer.ffn, MoESpec):
            idle = layer.ffn.num_experts - active_experts(layer.ffn, batch)
            total -= round(idle * feed_forward_params(layer.ffn.expert) * itemsize)
    return total


def active_experts(moe: MoESpec, batch: int = 1) -> float:
    """Distinct routed experts a decode step of ``batch`` tokens reads: ``top_k`` for one
    token; for more, the expectation under uniform routing, ``E * (1 - (1 - k/E) ** batch)``."""
    e, k = moe.num_experts, moe.top_k
    return e * (1.0 - (1.0 - k / e) ** max(batch, 1))


def feed_forward_params(ffn: FeedForwardSpec) -> int:
    """Parameters of one feed-forward block: its projections and, with ``bias``, their biases."""
    projections = 3 if ffn.gated else 2
    total = projections * ffn.hidden_dim * ffn.intermediate_dim
    if ffn.bias:
        total += (projections - 1) * ffn.intermediate_dim + ffn.hidden_dim
    return total


def kv_bytes_read_per_step(spec: ModelSpec, batch: int, context: float, itemsize: int) -> int:
    """Keys and values of ``context`` cached tokens per sequence (capped at a layer's
    sliding window), over every layer and sequence."""
    total = 0.0
    for layer in spec.layers:
        a = layer.attention
        seen = min(context, a.sliding_window) if a.sliding_window else context
        total += 2 * a.num_kv_heads * a.head_dim * seen * itemsize  # type: ignore[operator]  # validated spec
    return int(total * batch)


def decode_roofline(
    model: torch.nn.Module,
    spec: ModelSpec,
    batch: int,
    prompt_len: int,
    gen_len: int,
    bandwidth: float,
) -> Roofline:
    """Averaged over the decode steps of a run (context grows from ``prompt_len + 1``)."""
    itemsize = _param_itemsize(model)
    weights = weight_bytes_read_per_step(model, spec, batch)
    return roofline(
        bandwidth,
        weights,
        kv_bytes_read_per_step(spec, batch, prompt_len + gen_len / 2, itemsize),
        batch,
    )


def roofline(bandwidth: float, weight_bytes: int, kv_bytes_per_step: int, batch: int) -> Roofline:
    """The roofline of a decode step that reads ``weight_bytes`` and ``kv_bytes_per_step``
    (all sequences) at ``bandwidth`` bytes/s, for ``batch`` sequences."""
    per_step = weight_bytes + kv_bytes_per_step
    return Roofline(
        bandwidth, weight_bytes, kv_bytes_per_step, per_step, batch * bandwidth / per_step
    )


def _param_itemsize(model: torch.nn.Module) -> int:
    for p in model.parameters():
        if p.is_floating_point():
            return p.element_size()
    return 4
