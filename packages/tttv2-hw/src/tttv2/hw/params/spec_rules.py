"""Adjustments that follow from a spec (what is computed), applied after the device
tables: a spec can make a default impossible (soft-capped attention cannot use SDPA) or
pointless (an ungated MLP has no gate to fuse)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tttv2.core.errors import TTTv2Error
from tttv2.core.specs import (
    AttentionSpec,
    FeedForwardSpec,
    KVCacheSpec,
    LMHeadSpec,
    ModelSpec,
    ModuleSpec,
    MoESpec,
    NormSpec,
    RopeSpec,
)
from tttv2.hw.params.tables import DENSE_MOE_MAX_EXPERTS

#: Which spec classes describe each operation.
SPEC_TYPES: dict[str, tuple[type[ModuleSpec], ...]] = {
    "attention": (AttentionSpec,),
    "ffn": (FeedForwardSpec,),
    "norm": (NormSpec,),
    "rope": (RopeSpec,),
    "moe": (MoESpec,),
    "lm_head": (LMHeadSpec,),
    "kv_cache": (KVCacheSpec,),
    "model": (ModelSpec,),
}


def _attention(spec: AttentionSpec, knobs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"prefill_chunk_size": min(knobs["prefill_chunk_size"], spec.max_seq_len)}
    if spec.logit_softcap is not None and knobs["kernel"] == "sdpa":
        out["kernel"] = "math"
    return out


def _ffn(spec: FeedForwardSpec, knobs: dict[str, Any]) -> dict[str, Any]:
    return {} if spec.gated else {"fuse_gate_up": False}


def _moe(spec: MoESpec, knobs: dict[str, Any]) -> dict[str, Any]:
    out = _ffn(spec.expert, knobs)
    if knobs["expert_dispatch"] == "dense" and spec.num_experts > DENSE_MOE_MAX_EXPERTS:
        out["expert_dispatch"] = "sorted"
    return out


def _kv_cache(spec: KVCacheSpec, knobs: dict[str, Any]) -> dict[str, Any]:
    if knobs["kv_block_size"] >= spec.max_seq_len:
        return {"kv_block_size": spec.max_seq_len, "layout": "contiguous"}
    return {}


def _lm_head(spec: LMHeadSpec, knobs: dict[str, Any]) -> dict[str, Any]:
    chunk = knobs["vocab_chunk_size"]
    return {"vocab_chunk_size": None} if chunk is not None and chunk >= spec.vocab_size else {}


def _model(spec: ModelSpec, knobs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"prefill_chunk_size": min(knobs["prefill_chunk_size"], spec.max_seq_len)}
    if knobs["kernel"] == "sdpa" and any(layer.attention.logit_softcap for layer in spec.layers):
        out["kernel"] = "math"
    ffns = [
        layer.ffn.expert if isinstance(layer.ffn, MoESpec) else layer.ffn for layer in spec.layers
    ]
    if not any(f.gated for f in ffns):
        out["fuse_gate_up"] = False
    return out


_RULES: dict[str, Callable[[Any, dict[str, Any]], dict[str, Any]]] = {
    "attention": _attention,
    "ffn": _ffn,
    "moe": _moe,
    "kv_cache": _kv_cache,
    "lm_head": _lm_head,
    "model": _model,
}


def apply_spec_rules(op: str, spec: ModuleSpec, knobs: dict[str, Any]) -> dict[str, Any]:
    """``knobs`` updated for ``spec``; a spec of the wrong kind is an error."""
    expected = SPEC_TYPES[op]
    if not isinstance(spec, expected):
        names = " or ".join(t.__name__ for t in expected)
        raise TTTv2Error(f"get_optimal_params({op!r}) needs a {names}, got {type(spec).__name__}")
    rule = _RULES.get(op)
    return {**knobs, **rule(spec, knobs)} if rule else knobs
