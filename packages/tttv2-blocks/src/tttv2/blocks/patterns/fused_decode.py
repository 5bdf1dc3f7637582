"""Decode passes of a transformer stack through tttv2-hw's ``decode_layers`` kernel op.

A decode step of a small model is mostly dispatch: ~20 eager operations per layer of a few
microseconds each around the weight reads. Where the kernel registry has a
``decode_layers`` kernel for the device (:mod:`tttv2.hw.kernels.decode_layers`; today the
native one of ``torch-cpu``, x86 CPUs with AVX2), :class:`FusedDecode` hands it every
layer as :meth:`DecoderLayer.decode_weights` describes it and runs a pass as one call:
the same kernels and the same roundings as the eager blocks, with the Python between
them gone.

A layer qualifies when :meth:`DecoderLayer.decode_weights` says so (sequential pre-norm
with RMSNorms, sandwich norms included, fused q/k/v with or without QK-norm in the paged
DECODE implementation, a fused gated feed-forward or a mixture of gated experts, plain
``nn.Linear`` projections) and the kernel takes its dtypes and activation (and, for a
mixture of experts, says it takes those: ``takes_moe``; its router then runs in Python
between the kernel's calls). Everything else, and any pass that is not plain inference (autograd
recording, torch.compile tracing, forward hooks on any module of a layer, more rows than
the kernel serves), runs eagerly, so behaviour never depends on whether the fast path was
taken. A binding is made once; before each pass it is checked against the model (every
module, parameter and storage it bound is still in place, no hooks) and rebuilt when not
(``model.to(...)``, a swapped projection, a strategy switch). Per cache, the layers are
bound to its pools (one program of the kernel); the binding lets go of the pools when the
cache is dropped.

Captured decode (:meth:`FusedDecode.capture`, ``TransformerStack.capture_decode``): the
next pass binds afresh and later passes skip those re-checks, as a CUDA graph or a ttnn
trace replays the addresses it captured. Checking ~1,000 references costs ~0.45 ms of a
13 ms SmolLM2-135M step on a 2-core CPU, where weight streaming has evicted them from the
caches. A captured binding keeps every storage it bound alive, so a model changed after
capture computes with the weights it had (stale, never freed memory) until the next
``capture`` (the stack's own ``to()``/casts and ``switch_strategy`` recapture by themselves);
hooks added after capture are not seen either.

The checks read torch's module internals through :mod:`tttv2.core.torch_internals` only.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from operator import attrgetter, is_
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from tttv2.blocks.building_blocks.embedding import TokenEmbedding
from tttv2.blocks.building_blocks.kv_cache import PagedKVCache
from tttv2.blocks.building_blocks.moe import MoE
from tttv2.core import BatchMetadata
from tttv2.core.torch_internals import (
    child_slots,
    forward_hook_dicts,
    global_forward_hooks,
    parameter_slots,
)
from tttv2.hw.kernels.decode_layers import (
    DecodeLayer,
    DecodeLayersKernel,
    DecodeLayersProgram,
    DecodeLayersUnsupported,
    takes_moe_layers,
)

if TYPE_CHECKING:
    from tttv2.blocks.patterns.decoder_layer import DecoderLayer

_implementation = attrgetter("active_implementation")


class DecodeStackParts(Protocol):
    """What fused decode reads of a stack (a :class:`TransformerStack` is one)."""

    embedding: TokenEmbedding
    layers: nn.ModuleList
    final_norm: nn.Module
    lm_head: nn.Module


def _watch(layer: DecoderLayer) -> list[tuple[dict[str, Any], str, object]]:
    """(live dict, key, bound value) for every module and parameter the binding of
    ``layer`` depends on, re-checked before every pass (see :class:`Bindings`)."""
    attn = layer.attention
    slots, a = child_slots(layer), child_slots(attn)
    tree: list[tuple[dict[str, Any], str, object]] = [
        *((slots, n, getattr(layer, n)) for n in ("attn_norm", "attention", "ffn_norm", "ffn")),
        *((slots, n, getattr(layer, n)) for n in ("post_attn_norm", "post_ffn_norm")),
        (a, "qkv_proj", attn.qkv_proj), (a, "o_proj", attn.o_proj),
        (a, "q_norm", attn.q_norm), (a, "k_norm", attn.k_norm),
    ]  # fmt: skip
    norms = (
        layer.attn_norm,
        layer.ffn_norm,
        layer.post_attn_norm,
        layer.post_ffn_norm,
        attn.q_norm,
        attn.k_norm,
    )
    for norm in (m for m in norms if m is not None):
        tree.append((parameter_slots(norm), "weight", parameter_slots(norm)["weight"]))
    projections: list[nn.Module] = [attn.qkv_proj, attn.o_proj]  # type: ignore[list-item]
    slots_of_moe, feed_forwards = _feed_forwards(layer.ffn)
    tree += slots_of_moe
    for ffn in feed_forwards:
        f = child_slots(ffn)
        names = ("gate_up_proj", "gate_proj", "up_proj", "down_proj")
        tree += [(f, n, f.get(n)) for n in names]
        projections += [f[n] for n in names if f.get(n) is not None]
    for module in projections:
        params = parameter_slots(module)
        tree += [(params, n, params.get(n)) for n in ("weight", "bias")]
    return tree


def _feed_forwards(
    ffn: nn.Module,
) -> tuple[list[tuple[dict[str, Any], str, object]], list[nn.Module]]:
    """The modules whose projections the binding reads (the layer's feed-forward, or a
    mixture of experts' experts and shared expert) and, for a mixture of experts, the slots
    that hold them."""
    if not isinstance(ffn, MoE):
        return [], [ffn]
    f, experts = child_slots(ffn), child_slots(ffn.experts)
    tree: list[tuple[dict[str, Any], str, object]] = [
        (f, n, f.get(n)) for n in ("experts", "shared_expert")
    ]
    tree += [(experts, n, m) for n, m in experts.items()]
    shared = [ffn.shared_expert] if ffn.shared_expert is not None else []
    return tree, [*experts.values(), *shared]


class Bindings:
    """Everything the layers' binding depends on, checked in a few C-level passes (a pass
    of SmolLM2-135M's 30 layers checks ~1,000 references in tens of microseconds): the
    module tree and parameters as bound (identity), their storages (pointers), the
    attention implementations, forward hooks."""

    def __init__(self, layers: Sequence[DecoderLayer]) -> None:
        tree = [entry for layer in layers for entry in _watch(layer)]
        self._dicts = [d for d, _, _ in tree]
        self._keys = [k for _, k, _ in tree]
        self._bound = [v for _, _, v in tree]
        self._tensors = [v for d, k, v in tree if isinstance(v, torch.Tensor)]
        self._pointers = [t.data_ptr() for t in self._tensors]
        # aliases of the bound storages: a parameter given new data (``p.data = ...``) leaves
        # the kernel reading the old storage, which must outlive a captured binding
        self._storages = [t.detach() for t in self._tensors]
        self._attentions = [layer.attention for layer in layers]
        self._implementations = [a.active_implementation for a in self._attentions]
        modules = [m for layer in layers for m in layer.modules()]
        self._hooks = [d for m in modules for d in forward_hook_dicts(m)]

    def intact(self) -> bool:
        return (
            all(map(is_, map(dict.get, self._dicts, self._keys), self._bound))
            and list(map(torch.Tensor.data_ptr, self._tensors)) == self._pointers
            and all(map(is_, map(_implementation, self._attentions), self._implementations))
        )

    def hooked(self) -> bool:
        return any(map(len, self._hooks))


class BoundProgram:
    """The layers bound to one cache's pools by the kernel: valid while the cache's pools
    are the tensors it bound."""

    def __init__(
        self, kernel: DecodeLayersKernel, layers: list[DecodeLayer], cache: PagedKVCache
    ) -> None:
        self.cache = weakref.ref(cache)
        self.pools = _pools(cache)
        self._pointers = [t.data_ptr() for t in self.pools]
        self._storages = [t.detach() for t in self.pools]  # outlive a pool given new data
        self.program: DecodeLayersProgram = kernel(layers, self.pools[0::2], self.pools[1::2])

    def fits(self, cache: PagedKVCache, captured: bool = False) -> bool:
        """Whether this binding serves ``cache``; ``captured`` checks the cache but not its
        pools (bound pools are held, so a replaced pool is stale, not freed)."""
        return cache is self.cache() and (captured or self._pools_in_place(cache))

    def _pools_in_place(self, cache: PagedKVCache) -> bool:
        return (
            all(map(is_, _pools(cache), self.pools))
            and list(map(torch.Tensor.data_ptr, self.pools)) == self._pointers
        )


def _pools(cache: PagedKVCache) -> list[torch.Tensor]:
    """Every layer's key pool then value pool, in layer order."""
    return [t for lc in cache.layers for t in (lc.key, lc.value)]


class FusedDecode:
    """The fused decode path of one stack through ``kernel`` (see the module docstring)."""

    def __init__(self, stack: DecodeStackParts, kernel: DecodeLayersKernel) -> None:
        self.stack, self.kernel = stack, kernel
        self.layers: list[DecodeLayer] | None = None
        self._bindings: Bindings | None = None
        self.reason: str | None = None  # why the last pass ran eagerly
        self._bound: list[BoundProgram] = []  # the layers bound to one cache (emptied when it dies)
        self.captured = False  # bindings not re-checked before each pass (see capture)
        self._hooked = False  # under capture: whether the layers had hooks when bound

    def capture(self, enabled: bool = True) -> None:
        """With ``enabled``, the next pass binds the layers and the cache afresh and later
        passes trust that binding without re-checking it (see the module docstring); call
        again after changing the model. ``False`` re-checks before every pass again."""
        self.captured = enabled
        self.layers, self._bindings, self._bound = None, None, []

    def run(
        self, input_ids: torch.Tensor, meta: BatchMetadata, cache: PagedKVCache
    ) -> torch.Tensor | None:
        """Logits of a DECODE pass, or None when this pass must run eagerly (``reason`` says why)."""
        rows = input_ids.shape[0]
        if len(meta.query_lens) != rows:
            return self._eager(
                f"{rows} tokens for {len(meta.query_lens)} sequences (one token per sequence)"
            )
        if global_forward_hooks():
            return self._eager("global forward hooks")
        layers = self._layers()
        if layers is None:
            return None
        assert self._bindings is not None
        if self._hooked if self.captured else self._bindings.hooked():
            return self._eager("forward hooks on a layer")
        try:
            program = self._program(layers, cache)
        except DecodeLayersUnsupported as reason:  # a cache or layers the kernel does not take
            return self._eager(str(reason))
        if rows > program.max_rows:
            return self._eager(
                f"{rows} rows (the kernel serves 1..{program.max_rows}, one token per sequence)"
            )
        blocker = program.blocker()
        if blocker is not None:
            return self._eager(blocker)
        stack = self.stack
        h = stack.embedding(input_ids, meta.positions).contiguous()
        # Read now, while the caches are warm: after the program has streamed the weights
        # through them, even a one-row index_select costs ~0.25 ms (~1.5% of a SmolLM2-135M
        # step), so a pass asking every row's logits in order skips it.
        every_row = meta.logits_indices.tolist() == list(range(rows))
        program(
            h, meta.positions, meta.slot_mapping, meta.block_tables, meta.seq_lens, meta.max_seq_len
        )
        self.reason = None
        wanted = h if every_row else h.index_select(0, meta.logits_indices)
        return stack.lm_head(stack.final_norm(wanted))

    def _program(self, layers: list[DecodeLayer], cache: PagedKVCache) -> DecodeLayersProgram:
        bound = self._bound[0] if self._bound else None
        if bound is None or not bound.fits(cache, self.captured):
            bound = BoundProgram(self.kernel, layers, cache)
            # the binding keeps the pools alive: let it go with the cache, not with the model
            self._bound = [bound]
            weakref.finalize(cache, self._bound.clear)
        return bound.program

    def _layers(self) -> list[DecodeLayer] | None:
        bindings = self._bindings
        if (
            self.layers is not None
            and bindings is not None
            and (self.captured or bindings.intact())
        ):
            return self.layers
        modules: list[DecoderLayer] = list(self.stack.layers)  # type: ignore[arg-type]
        layers = []
        for i, layer in enumerate(modules):
            described = layer.decode_weights()
            if (
                isinstance(described, DecodeLayer)
                and described.moe
                and not takes_moe_layers(self.kernel)
            ):
                described = (
                    "a mixture of experts, which the device's decode_layers kernel does not take"
                )
            if isinstance(described, str):
                self.layers = None
                return self._eager(f"layer {i}: {described}")
            layers.append(described)
        self.layers, self._bindings, self._bound, self.reason = layers, Bindings(modules), [], None
        self._hooked = self._bindings.hooked()
        return layers

    def _eager(
        self, reason: str
    ) -> Any:  # always None ("run eagerly"), returned by run() and _layers()
        self.reason = reason
        return None
