"""Typed parameters per operation: what the hardware layer tells a block to do.

Every dataclass carries the common fields of :class:`OpParams` plus its operation's own.
Dtypes are names (see :mod:`tttv2.hw.dtypes`) so parameters survive JSON and TOML;
``params.torch_dtype("compute_dtype")`` converts one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from tttv2.hw.dtypes import to_torch_dtype


@dataclass(frozen=True)
class OpParams:
    """Fields every operation has (ops with matmuls add ``weight_dtype``, the dtype their
    weights are stored in).

    ``compute_dtype``: dtype of weights and activations in the matmuls.
    ``num_threads``: intra-op CPU threads (``torch.set_num_threads``).
    ``compile``: wrap the computation in ``torch.compile``.
    ``capture_graph``: capture the step as a CUDA graph / TT trace (decode, static shapes).
    """

    op: ClassVar[str] = ""
    mode: str
    device: str  # the profile these were chosen for, e.g. "cpu" or "cuda:H100"
    compute_dtype: str
    num_threads: int
    compile: bool
    capture_graph: bool

    def torch_dtype(self, field: str = "compute_dtype") -> torch.dtype:
        return to_torch_dtype(getattr(self, field))

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, **dataclasses.asdict(self)}

    @classmethod
    def knobs(cls) -> tuple[str, ...]:
        """Fields a table or an override may set (everything but mode and device)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name not in ("mode", "device"))


@dataclass(frozen=True)
class AttentionParams(OpParams):
    """``kernel``: ``"sdpa"`` (kernel ``prefill_attention`` through torch SDPA), ``"math"``
    (explicit fp32 math, needed for logit soft-capping) or ``"paged_decode"`` (kernel
    ``paged_decode_attention``). ``prefill_chunk_size``: most new tokens per sequence in one
    forward (longer prompts are prefilled in chunks against the cache). ``fuse_qkv``: one
    matmul for q, k and v."""

    op: ClassVar[str] = "attention"
    weight_dtype: str
    kernel: str
    kv_cache_dtype: str
    kv_block_size: int
    prefill_chunk_size: int
    fuse_qkv: bool


@dataclass(frozen=True)
class FFNParams(OpParams):
    """``fuse_gate_up``: one matmul for the gate and up projections.
    ``prefill_row_chunk``: split prefill activations into chunks of this many rows (bounds
    on-chip memory; Tenstorrent ``prefill_len_cutoff``); None means no split."""

    op: ClassVar[str] = "ffn"
    weight_dtype: str
    fuse_gate_up: bool
    prefill_row_chunk: int | None


@dataclass(frozen=True)
class NormParams(OpParams):
    """``accumulate_dtype``: dtype of the mean of squares (fp32 keeps bf16 models exact)."""

    op: ClassVar[str] = "norm"
    accumulate_dtype: str


@dataclass(frozen=True)
class RopeParams(OpParams):
    """``table_dtype``: dtype of the cached cos/sin tables."""

    op: ClassVar[str] = "rope"
    table_dtype: str


@dataclass(frozen=True)
class MoEParams(OpParams):
    """``expert_dispatch``: ``"sorted"`` groups tokens by expert and runs each active expert
    once (dynamic shapes); ``"dense"`` runs every expert on every token and weights the
    results (static shapes: graph capture, tiny expert counts)."""

    op: ClassVar[str] = "moe"
    weight_dtype: str
    fuse_gate_up: bool
    expert_dispatch: str


@dataclass(frozen=True)
class LMHeadParams(OpParams):
    """``logits_dtype``: dtype logits are returned in. ``vocab_chunk_size``: compute logits
    in vocabulary slices of this size to bound peak memory (None: all at once)."""

    op: ClassVar[str] = "lm_head"
    weight_dtype: str
    logits_dtype: str
    vocab_chunk_size: int | None


@dataclass(frozen=True)
class KVCacheParams(OpParams):
    """``kv_block_size``: tokens per cache block; ``kv_cache_dtype``: storage dtype;
    ``layout``: ``"paged"`` (block tables) or ``"contiguous"`` (one block per sequence)."""

    op: ClassVar[str] = "kv_cache"
    kv_cache_dtype: str
    kv_block_size: int
    layout: str


@dataclass(frozen=True)
class ModelParams(OpParams):
    """Whole-model choices a runtime needs in one place. ``fuse_decode_layers``: run each
    decoder layer's decode step as one native call where the device has that kernel
    (x86 CPUs with AVX2; elsewhere the layers run op by op whatever the knob says)."""

    op: ClassVar[str] = "model"
    weight_dtype: str
    kv_cache_dtype: str
    kv_block_size: int
    prefill_chunk_size: int
    fuse_qkv: bool
    fuse_gate_up: bool
    attention_kernel: str
    decode_batch_size: int
    fuse_decode_layers: bool = True
    precision: str | None = None


#: Operation name -> its parameter class.
PARAMS_CLASSES: dict[str, type[OpParams]] = {
    cls.op: cls
    for cls in (
        AttentionParams,
        FFNParams,
        NormParams,
        RopeParams,
        MoEParams,
        LMHeadParams,
        KVCacheParams,
        ModelParams,
    )
}

#: Every knob any operation has, with the values each may take (None: any of its type).
KNOB_CHOICES: dict[str, tuple[Any, ...] | None] = {
    "kernel": ("sdpa", "math", "paged_decode"),
    "attention_kernel": ("sdpa", "math", "paged_decode"),
    "expert_dispatch": ("sorted", "dense"),
    "layout": ("paged", "contiguous"),
    "precision": ("bf16", "accuracy", "performance", "int8"),
}
