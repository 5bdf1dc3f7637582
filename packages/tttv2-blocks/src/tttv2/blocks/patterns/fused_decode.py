"""Decode passes of a transformer stack with one native call per decoder layer.

A decode step of a small model is mostly dispatch: ~20 eager operations per layer of a few
microseconds each around the weight reads. Where tttv2-hw has its one-call decoder layer
kernel (:mod:`tttv2.hw.kernels.native_decode_layer`, x86 CPUs with AVX2) and a layer is
the kind it computes, :class:`FusedDecode` runs the layers through it: the same kernels
and the same roundings as the eager blocks, with the Python between them gone.

A layer qualifies when its spec and modules are: sequential pre-norm with RMSNorm and no
sandwich norms; attention with fused q/k/v, no QK-norm, rotary or none, running the paged
DECODE implementation; a gated feed-forward (SiLU or tanh-GELU) with fused gate/up; plain
``nn.Linear`` projections and one dtype. Everything else, and any pass that is not plain
inference (autograd recording, torch.compile tracing, forward hooks on any module of a
layer, more rows than the kernel serves), runs eagerly, so behaviour never depends on
whether the fast path was taken. Plans bind weight pointers once; before each pass they
check that every module, parameter and storage they bound is still in place and rebuild
when not (``model.to(...)``, a swapped projection, a strategy switch). Per cache, the plans
are bound to its pools and to cos/sin row buffers (one pair per distinct rotary spec) in a
:class:`~tttv2.hw.kernels.native_decode_stack.NativeDecodeStack`, so a pass is one native
call for all the layers; the binding lets go of the pools when the cache is dropped.

Captured decode (:meth:`FusedDecode.capture`, ``TransformerStack.capture_decode``): the
next pass binds afresh and later passes skip those re-checks, as a CUDA graph or a ttnn
trace replays the addresses it captured. Checking ~1,000 references costs ~0.45 ms of a
13 ms SmolLM2-135M step on a 2-core CPU, where weight streaming has evicted them from the
caches. A captured binding keeps every storage it bound alive, so a model changed after
capture computes with the weights it had (stale, never freed memory) until the next
``capture`` (the stack's own ``to()``/casts and ``switch_strategy`` recapture by themselves);
hooks added after capture are not seen either.
"""

from __future__ import annotations

import weakref
from operator import is_
from typing import TYPE_CHECKING

import torch
from torch import nn

from tttv2.blocks.building_blocks.attention.implementations.decode import DecodeAttention
from tttv2.blocks.building_blocks.feed_forward import FeedForward
from tttv2.blocks.building_blocks.kv_cache import PagedKVCache
from tttv2.blocks.building_blocks.normalization import RMSNorm
from tttv2.blocks.building_blocks.rope import RotaryEmbedding
from tttv2.core import BatchMetadata
from tttv2.hw.kernels.native_decode_layer import (
    ACTIVATIONS,
    MAX_ROWS,
    DecodeLayerShape,
    DecodeLayerWeights,
    NativeDecodeLayer,
    NativeDecodeStep,
    native_decode_layer_available,
)
from tttv2.hw.kernels.native_decode_stack import NativeDecodeStack

if TYPE_CHECKING:
    from tttv2.blocks.patterns.decoder_layer import DecoderLayer
    from tttv2.blocks.patterns.transformer_stack import TransformerStack


class LayerPlan:
    """One decoder layer bound to the native kernel, with what to re-check before a pass."""

    def __init__(self, layer: DecoderLayer) -> None:
        attn, ffn = layer.attention, layer.ffn
        s = attn.spec
        self.rotary = attn.rotary
        linears = {
            "qkv": attn.qkv_proj,
            "o": attn.o_proj,
            "gate_up": ffn.gate_up_proj,
            "down": ffn.down_proj,
        }
        self.kernel = NativeDecodeLayer(
            DecodeLayerWeights(
                layer.attn_norm.weight, linears["qkv"].weight, linears["qkv"].bias, linears["o"].weight,
                linears["o"].bias, layer.ffn_norm.weight, linears["gate_up"].weight, linears["gate_up"].bias,
                linears["down"].weight, linears["down"].bias,
            ),
            DecodeLayerShape(
                s.num_heads, s.num_kv_heads, s.head_dim, s.rope.rotary_dim if s.rope is not None else 0,
                s.rope.interleaved if s.rope is not None else False, ffn.spec.activation,
                layer.attn_norm.eps, layer.ffn_norm.eps, layer.attn_norm.unit_offset, layer.ffn_norm.unit_offset,
                s.softmax_scale, s.logit_softcap, s.sliding_window,
            ),
        )  # fmt: skip
        # what the plan bound, re-checked before every pass (see Bindings)
        tree = [(layer._modules, n, getattr(layer, n)) for n in ("attn_norm", "attention", "ffn_norm", "ffn")]
        tree += [(layer._modules, n, None) for n in ("post_attn_norm", "post_ffn_norm")]
        tree += [(attn._modules, "qkv_proj", attn.qkv_proj), (attn._modules, "o_proj", attn.o_proj)]
        tree += [(attn._modules, "q_norm", None), (ffn._modules, "gate_up_proj", ffn.gate_up_proj)]
        tree += [(ffn._modules, "down_proj", ffn.down_proj), (attn.__dict__, "_active", attn._active)]
        params = [(m._parameters, "weight", m._parameters["weight"]) for m in (layer.attn_norm, layer.ffn_norm)]
        params += [(m._parameters, n, m._parameters.get(n)) for m in linears.values() for n in ("weight", "bias")]
        self.tree = tree + params
        self.tensors = [p for _, _, p in params if p is not None]
        self.modules = list(layer.modules())


class Bindings:
    """Everything the plans of a stack bound, checked in a few C-level passes (a pass of
    SmolLM2-135M's 30 layers checks ~1,000 references in tens of microseconds): the module
    tree and parameters as bound (identity), their storages (pointers), forward hooks."""

    def __init__(self, plans: list[LayerPlan]) -> None:
        self._dicts = [d for p in plans for d, _, _ in p.tree]
        self._keys = [k for p in plans for _, k, _ in p.tree]
        self._bound = [v for p in plans for _, _, v in p.tree]
        self._tensors = [t for p in plans for t in p.tensors]
        self._pointers = [t.data_ptr() for t in self._tensors]
        # aliases of the bound storages: a parameter given new data (``p.data = ...``) leaves
        # the kernel reading the old storage, which must outlive a captured binding
        self._storages = [t.detach() for t in self._tensors]
        modules = [m for p in plans for m in p.modules]
        self._hooks = [m._forward_hooks for m in modules] + [m._forward_pre_hooks for m in modules]

    def intact(self) -> bool:
        return all(map(is_, map(dict.get, self._dicts, self._keys), self._bound)) and (
            list(map(torch.Tensor.data_ptr, self._tensors)) == self._pointers
        )

    def hooked(self) -> bool:
        return any(map(len, self._hooks))


class BoundStack:
    """The plans bound to one cache's pools and to cos/sin row buffers (one pair per
    distinct rotary spec, shared by the layers that rotate alike): the one native call a
    decode pass makes, valid while the cache's pools are the tensors it bound."""

    def __init__(self, plans: list[LayerPlan], cache: PagedKVCache, dtype: torch.dtype) -> None:
        self.cache, self.dtype = weakref.ref(cache), dtype
        self.pools = _pools(cache)
        self._pointers = [t.data_ptr() for t in self.pools]
        self._storages = [t.detach() for t in self.pools]  # outlive a pool given new data
        # (rotary, cos rows, sin rows) per distinct rotary spec; layers without rotation get Nones
        shared: dict[object, tuple[RotaryEmbedding, torch.Tensor, torch.Tensor]] = {}
        none = (None, None, None)
        for plan in plans:
            rotary = plan.rotary
            if rotary is not None and rotary.spec not in shared:
                rows = (MAX_ROWS, rotary.spec.rotary_dim // 2)
                shared[rotary.spec] = (rotary, torch.zeros(rows, dtype=dtype), torch.zeros(rows, dtype=dtype))
        per_layer = [shared[p.rotary.spec] if p.rotary is not None else none for p in plans]
        self.rotations = list(shared.values())
        self.kernel = NativeDecodeStack(
            [p.kernel for p in plans], self.pools[0::2], self.pools[1::2],
            [r[1] for r in per_layer], [r[2] for r in per_layer],
        )  # fmt: skip

    def fits(self, cache: PagedKVCache, dtype: torch.dtype, captured: bool = False) -> bool:
        """Whether this binding serves ``cache``; ``captured`` checks the cache and dtype
        but not its pools (bound pools are held, so a replaced pool is stale, not freed)."""
        return (
            cache is self.cache()
            and dtype == self.dtype
            and (captured or self._pools_in_place(cache))
        )

    def _pools_in_place(self, cache: PagedKVCache) -> bool:
        return (
            all(map(is_, _pools(cache), self.pools))
            and list(map(torch.Tensor.data_ptr, self.pools)) == self._pointers
        )


def _pools(cache: PagedKVCache) -> list[torch.Tensor]:
    """Every layer's key pool then value pool, in layer order."""
    return [t for lc in cache.layers for t in (lc.key, lc.value)]


def plan_layer(layer: DecoderLayer) -> LayerPlan | str:
    """A :class:`LayerPlan`, or why the layer runs op by op."""
    attn, ffn, spec = layer.attention, layer.ffn, layer.spec
    if spec.parallel or layer.post_attn_norm is not None or layer.post_ffn_norm is not None:
        return "parallel or sandwich-norm layer"
    if type(layer.attn_norm) is not RMSNorm or type(layer.ffn_norm) is not RMSNorm:
        return "norms are not RMSNorm"
    if (
        attn.qkv_proj is None
        or attn.q_norm is not None
        or type(attn._active) is not DecodeAttention
    ):
        return "attention without fused q/k/v, with QK-norm, or not in paged DECODE"
    if type(ffn) is not FeedForward or not ffn.spec.gated or ffn.gate_up_proj is None:
        return "feed-forward is not a fused gated FeedForward"
    if ffn.spec.activation not in ACTIVATIONS:
        return f"activation {ffn.spec.activation!r} is not one of {sorted(ACTIVATIONS)}"
    if any(
        type(m) is not nn.Linear
        for m in (attn.qkv_proj, attn.o_proj, ffn.gate_up_proj, ffn.down_proj)
    ):
        return "a projection is not a plain nn.Linear"
    try:
        return LayerPlan(layer)
    except ValueError as reason:  # dtypes, devices, layouts the kernel does not take
        return str(reason)


class FusedDecode:
    """The native decode path of one :class:`TransformerStack` (see the module docstring)."""

    def __init__(self, stack: TransformerStack) -> None:
        self.stack = stack
        self.plans: list[LayerPlan] | None = None
        self._bindings: Bindings | None = None
        self._workspace = 0  # bytes per row, the most any layer needs
        self.reason: str | None = None  # why the last pass ran eagerly
        self._bound: list[BoundStack] = []  # the plans bound to one cache (emptied when it dies)
        self.captured = False  # bindings not re-checked before each pass (see capture)
        self._hooked = False  # under capture: whether the layers had hooks when bound

    def capture(self, enabled: bool = True) -> None:
        """With ``enabled``, the next pass binds the layers and the cache afresh and later
        passes trust that binding without re-checking it (see the module docstring); call
        again after changing the model. ``False`` re-checks before every pass again."""
        self.captured = enabled
        self.plans, self._bindings, self._bound = None, None, []

    def run(
        self, input_ids: torch.Tensor, meta: BatchMetadata, cache: PagedKVCache
    ) -> torch.Tensor | None:
        """Logits of a DECODE pass, or None when this pass must run eagerly (``reason`` says why)."""
        rows = input_ids.shape[0]
        if self.stack.embedding.weight.device.type != "cpu":
            return self._eager("the native decode layer kernel is for CPU tensors")
        if rows > MAX_ROWS or len(meta.query_lens) != rows:
            return self._eager(
                f"{rows} rows (the kernel serves 1..{MAX_ROWS}, one token per sequence)"
            )
        if not native_decode_layer_available():
            return self._eager(
                "native decode layer unavailable (no kernel, autograd recording or compiling)"
            )
        if _global_hooks():
            return self._eager("global forward hooks")
        plans = self._plans()
        if plans is None:
            return None
        assert self._bindings is not None
        if self._hooked if self.captured else self._bindings.hooked():
            return self._eager("forward hooks on a layer")
        stack = self.stack
        try:
            native = self._native_stack(cache, stack.embedding.weight.dtype)
        except ValueError as reason:  # a cache the kernel does not take (dtype, layout)
            return self._eager(str(reason))
        h = stack.embedding(input_ids, meta.positions).contiguous()
        step = NativeDecodeStep(
            h, meta.slot_mapping, meta.block_tables.contiguous(), meta.seq_lens, h.dtype,
            rows * self._workspace,
        )  # fmt: skip
        for rotary, cos_rows, sin_rows in native.rotations:
            rotary.cos_sin_into(meta.positions, cos_rows[:rows], sin_rows[:rows], meta.max_seq_len)
        native.kernel(step)
        self.reason = None
        return stack.lm_head(stack.final_norm(h.index_select(0, meta.logits_indices)))

    def _native_stack(self, cache: PagedKVCache, dtype: torch.dtype) -> BoundStack:
        bound = self._bound[0] if self._bound else None
        if bound is None or not bound.fits(cache, dtype, self.captured):
            assert self.plans is not None
            bound = BoundStack(self.plans, cache, dtype)
            # the binding keeps the pools alive: let it go with the cache, not with the model
            self._bound = [bound]
            weakref.finalize(cache, self._bound.clear)
        return bound

    def _plans(self) -> list[LayerPlan] | None:
        bindings = self._bindings
        if self.plans is not None and bindings is not None and (self.captured or bindings.intact()):
            return self.plans
        plans = []
        for i, layer in enumerate(self.stack.layers):
            plan = plan_layer(layer)
            if isinstance(plan, str):
                self.plans = None
                return self._eager(f"layer {i}: {plan}")
            plans.append(plan)
        dtype = self.stack.embedding.weight.dtype
        self._workspace = max(p.kernel.workspace_bytes(1, dtype) for p in plans)
        self.plans, self._bindings, self._bound, self.reason = plans, Bindings(plans), [], None
        self._hooked = self._bindings.hooked()
        return plans

    def _eager(self, reason: str) -> None:
        self.reason = reason
        return None


def _global_hooks() -> bool:
    """Whether forward hooks registered for every module exist (they must see each call)."""
    from torch.nn.modules import module

    return bool(
        getattr(module, "_global_forward_hooks", None)
        or getattr(module, "_global_forward_pre_hooks", None)
    )
