"""The memory-bandwidth roofline of decoding: every decode step reads all weights once
and each sequence's cached keys and values; bandwidth over those bytes bounds tokens/s."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from tttv2.core.specs import ModelSpec


@dataclass
class Roofline:
    bandwidth_bytes_per_s: float
    weight_bytes: int
    kv_bytes_per_step: int
    bytes_per_decode_step: int
    decode_tokens_per_s: float  # batch * bandwidth / bytes per step

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def weight_bytes_read_per_step(model: torch.nn.Module, spec: ModelSpec) -> int:
    """Bytes of every distinct parameter as stored (a tied embedding counts once; int8
    weights one byte each plus their float32 scales); an untied embedding table is left out
    (a step gathers only a few of its rows), and so is the LM head's ``weight`` when the
    head computes from its own int8 codes (the ``int8`` precision preset; tied: the
    embedding table)."""
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
    return total


def kv_bytes_read_per_step(spec: ModelSpec, batch: int, context: float, itemsize: int) -> int:
    """Keys and values of ``context`` cached tokens per sequence (capped at a layer's
    sliding window), over every layer and sequence."""
    total = 0.0
    for layer in spec.layers:
        a = layer.attention
        seen = min(context, a.sliding_window) if a.sliding_window else context
        total += 2 * a.num_kv_heads * a.head_dim * seen * itemsize
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
    weights = weight_bytes_read_per_step(model, spec)
    return roofline(bandwidth, weights, kv_bytes_read_per_step(spec, batch, prompt_len + gen_len / 2, itemsize), batch)


def roofline(bandwidth: float, weight_bytes: int, kv_bytes_per_step: int, batch: int) -> Roofline:
    """The roofline of a decode step that reads ``weight_bytes`` and ``kv_bytes_per_step``
    (all sequences) at ``bandwidth`` bytes/s, for ``batch`` sequences."""
    per_step = weight_bytes + kv_bytes_per_step
    return Roofline(bandwidth, weight_bytes, kv_bytes_per_step, per_step, batch * bandwidth / per_step)


def _param_itemsize(model: torch.nn.Module) -> int:
    for p in model.parameters():
        if p.is_floating_point():
            return p.element_size()
    return 4
