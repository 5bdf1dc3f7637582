"""TransformerStack: a decoder-only language model built from a ModelSpec.

::

    h = embedding(input_ids, meta.positions)
    h = layer_i(h, meta, cache.layer(i))            for every layer (own spec per layer)
    logits = lm_head(final_norm(h[meta.logits_indices]))

Only the rows that need logits go through the final norm and the head (norms act per
token, so selecting first changes nothing but the cost). Parameters: ``embedding``,
``layers.{i}`` (:class:`DecoderLayer`), ``final_norm``, ``lm_head`` (whose ``weight`` *is*
``embedding.weight`` when the head is tied).

Execution modes: each pass runs in ``meta.mode``; when the stack's current mode differs it
calls :meth:`set_mode` first (that only rebinds each attention's implementation), so the
stack runs in every mode its execution strategy provides, and ``set_mode`` may also be
called explicitly beforehand (the generation runtime does). When a strategy in the stack
selects by the runtime context (``dynamic``: :class:`~tttv2.core.DynamicStrategy`), every
pass calls ``set_mode(meta.mode, context=...)`` with the pass's
:class:`~tttv2.core.RuntimeContext` built from ``meta``
(:func:`~tttv2.blocks.patterns.pass_context.pass_context`: batch size, longest sequence,
new tokens; available memory unknown), so its rules choose again for each pass: a long
prompt can run through the chunked LONG_CONTEXT attention and the next short one through
plain PREFILL. Whether to do so is decided when the stack is built and at
:meth:`switch_strategy`; stacks whose strategies do not select by context pay nothing.

Decode path: DECODE passes run one of three ways, decided once when the stack is
prepared for its device and strategy (at construction, after ``to()`` and other moves or
casts, at :meth:`switch_strategy`, :meth:`compile_decode`, :meth:`fuse_decode_layers` and
:meth:`prepare_decode`) and recorded with the reason in :attr:`TransformerStack.decode_path`
(``tttv2 bench`` and ``tttv2 hw`` report it); ``forward`` follows it and decides nothing:

* compiled: :meth:`compile_decode` (or tttv2-hw's ``compile`` knob for the ``model`` op in
  decode mode) runs DECODE passes of up to ``max_batch`` sequences through
  ``torch.compile`` with dynamic shapes, which removes the Python cost of the composition
  from every step; with the hardware layer's ``capture_graph`` on CUDA the step is also
  captured as a CUDA graph (``mode="reduce-overhead"``). On CPU it is off by default: on a
  2-core AVX2 CPU the compiled bf16 step of the SmolLM2-135M shape ran at about half the
  eager speed (``tools/bench/bench_model.py --compile``; docs/BENCHMARKS.md).
* fused: where tttv2-hw's kernel registry has a ``decode_layers`` kernel for the device
  (:mod:`tttv2.hw.kernels.decode_layers`; the native one on x86 CPUs with AVX2), a pass
  is one kernel call for all the layers when every layer is of its kind
  (:meth:`DecoderLayer.decode_weights`, checked when the layers are bound, so projections
  fused after construction count), with the same kernels and roundings
  (:mod:`tttv2.blocks.patterns.fused_decode`); tttv2-hw's ``fuse_decode_layers`` knob
  (``model`` op, decode mode; default on) or :meth:`fuse_decode_layers` turns it off. A
  pass it cannot serve runs the layers op by op; :attr:`fused_decode_reason` says why the
  last one did. Before each fused pass the binding is checked against the model (modules,
  parameters, storages, hooks); :meth:`capture_decode` binds once at the next pass and
  skips those checks from then on, as a CUDA graph replays what it captured: for callers
  that own the model and do not change it between passes (``tttv2 generate`` and
  ``tttv2 bench``).
* eager: every layer op by op.

Bad inputs: a token id outside the vocabulary or a learned position beyond
``max_positions`` raises :class:`~tttv2.blocks.EmbeddingIndexError` (a ``ValueError``
naming the value and the valid range) before any layer runs, on every path (eager, fused,
compiled).

Per-layer outputs: ``forward(..., output_hidden_states=True)`` returns ``(logits,
hidden_states)`` with ``hidden_states`` a tuple of ``num_layers + 1`` tensors ``[T,
hidden]`` in Hugging Face's ``output_hidden_states`` convention: the embedding output, the
output of layers ``0 .. N-2``, and the *final-normed* output of the last layer (all
tokens, not only the logits rows).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any, cast

import torch

from tttv2.blocks.building_blocks.embedding import TokenEmbedding
from tttv2.blocks.building_blocks.kv_cache import PagedKVCache
from tttv2.blocks.building_blocks.lm_head import LMHead
from tttv2.blocks.building_blocks.normalization import make_norm
from tttv2.blocks.building_blocks.rope.rows import pass_scope
from tttv2.blocks.patterns.decode_path import DecodePath
from tttv2.blocks.patterns.decoder_layer import DecoderLayer
from tttv2.blocks.patterns.fused_decode import FusedDecode
from tttv2.blocks.patterns.pass_context import pass_context, selects_by_context
from tttv2.core import BaseModule, BatchMetadata, ExecutionMode, ExecutionStrategy
from tttv2.core.specs import ModelSpec
from tttv2.hw import get_kernel
from tttv2.hw.device_params import device_params
from tttv2.hw.kernels.decode_layers import DecodeLayersKernel, choose_decode_path


class TransformerStack(BaseModule):
    specialized = False
    spec: ModelSpec

    def __init__(
        self,
        spec: ModelSpec,
        device: torch.device | str | None = None,
        execution_strategy: ExecutionStrategy | str | None = None,
    ) -> None:
        if not isinstance(spec, ModelSpec):
            raise TypeError(f"TransformerStack needs a ModelSpec, got {type(spec).__name__}")
        super().__init__(spec, device, execution_strategy)
        dev = self.device
        self.embedding = TokenEmbedding(spec.embedding, device=dev)
        self.layers = torch.nn.ModuleList(
            DecoderLayer(layer, dev, self.execution_strategy) for layer in spec.layers
        )
        self.final_norm = make_norm(spec.final_norm, device=dev)
        self.lm_head = LMHead(
            spec.lm_head, embedding=self.embedding if spec.lm_head.tied else None, device=dev
        )
        self._by_context = selects_by_context(self)  # set_mode with a context on every pass
        # what the caller asked (None: tttv2-hw's knob for the device); prepare_decode decides
        self._compile_request: bool | None = None
        self._compile_options: dict[str, Any] = {
            "max_batch": 1,
            "capture_graph": None,
            "backend": "inductor",
        }
        self._fuse_request: bool | None = None
        self._capture = False  # whether fused decode trusts its binding (capture_decode)
        self._decode_step: Callable[..., Any] | None = None  # compiled DECODE pass
        self._decode_max_batch = 1  # largest batch the compiled step serves
        self._fused: FusedDecode | None = None  # one kernel call for all layers at decode
        self.prepare_decode()

    def forward(
        self,
        input_ids: torch.Tensor,
        meta: BatchMetadata,
        cache: PagedKVCache,
        output_hidden_states: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Logits ``[len(meta.logits_indices), vocab]`` for the flattened tokens
        ``input_ids [T]``; every layer writes the new tokens' K/V into ``cache``."""
        self._check(input_ids, meta, cache)
        if self._by_context:  # a dynamic strategy chooses again for every pass
            self.set_mode(meta.mode, context=pass_context(meta))
        elif self.current_mode is not meta.mode:
            self.set_mode(meta.mode)
        if meta.mode is ExecutionMode.DECODE and not output_hidden_states:
            step = self._decode_step
            if step is not None and len(meta.seq_ids) <= self._decode_max_batch:
                self.embedding.check_inputs(
                    input_ids, meta.positions
                )  # left out of the traced graph
                return step(input_ids, meta, cache)
            fused = self._fused
            if fused is not None and not torch.compiler.is_compiling():
                logits = fused.run(input_ids, meta, cache)
                if logits is not None:
                    return logits
        return self._run(input_ids, meta, cache, output_hidden_states)

    # -- the decode path -----------------------------------------------------------------
    @property
    def decode_path(self) -> DecodePath:
        """How DECODE passes run (compiled, fused or eager) and why; see the module docstring."""
        return self._decode_path

    def prepare_decode(self) -> DecodePath:
        """Decide the decode path for the stack's device and strategy now (the stack does
        so by itself when it is built, moved, cast or switched; call this after replacing
        modules). Reads tttv2-hw's ``compile`` and ``fuse_decode_layers`` knobs unless
        :meth:`compile_decode` or :meth:`fuse_decode_layers` said otherwise."""
        device = self.embedding.weight.device
        params = device_params("model", ExecutionMode.DECODE, device, self.spec)
        compile_on = self._compile_request
        if compile_on is None:
            compile_on = bool(params is not None and params.compile)
        fuse_on = self._fuse_request
        if fuse_on is None:
            fuse_on = bool(getattr(params, "fuse_decode_layers", True))
        # the registry types every op's kernel as Callable[..., Any]; this op's is a DecodeLayersKernel
        kernel = cast(DecodeLayersKernel, get_kernel("decode_layers", device))
        choice = choose_decode_path(device, compile=compile_on, fuse=fuse_on, kernel=kernel)
        # DecodeStackParts declares mutable nn.Module attributes; ours are subclasses (LMHead)
        self._fused = FusedDecode(self, kernel) if choice.fuse else None  # type: ignore[arg-type]
        if self._fused is not None:
            self._fused.capture(self._capture)
        self._decode_step = (
            self._compiled_step(device, params) if choice.kind == "compiled" else None
        )
        max_batch = self._compile_options["max_batch"] if self._decode_step is not None else 1
        path = DecodePath(choice.kind, choice.reason, device.type, choice.fuse, max_batch)  # type: ignore[arg-type]
        self._decode_path = path
        return path

    # -- fused decode ------------------------------------------------------------------
    def fuse_decode_layers(self, enabled: bool = True) -> None:
        """Run DECODE passes through tttv2-hw's ``decode_layers`` kernel where the device
        and the layers allow (see the module docstring); ``False`` runs them op by op."""
        self._fuse_request = bool(enabled)
        self.prepare_decode()

    def capture_decode(self, enabled: bool = True) -> None:
        """Capture fused DECODE passes: the next one binds the layers' weights and the
        cache, and later ones run that binding without re-checking it against the model
        (~0.45 ms of a 13 ms SmolLM2-135M step on a 2-core CPU). Like a CUDA graph, a
        captured binding does not see later changes to the model — new weights, swapped
        modules, hooks — until ``capture_decode()`` is called again; it keeps the storages it
        bound alive, so such changes give stale results, never freed memory (the library's
        own changes — ``to()`` and other casts or moves, ``switch_strategy`` — recapture by
        themselves). ``False`` checks before every pass again (the default). Off-CPU and
        unfused passes are not affected."""
        self._capture = bool(enabled)
        if self._fused is not None:
            self._fused.capture(self._capture)

    @property
    def decode_captured(self) -> bool:
        return self._capture

    def switch_strategy(self, strategy: ExecutionStrategy | str) -> None:
        super().switch_strategy(strategy)
        self._by_context = selects_by_context(self)
        self.prepare_decode()

    def _apply(
        self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True
    ) -> TransformerStack:
        out = super()._apply(fn, recurse)  # type: ignore[no-untyped-call]  # .to(), .float(), .cuda(), ...
        if "_decode_path" in self.__dict__:  # _apply also runs before __init__ has prepared
            self.prepare_decode()  # another device or dtype: decide (and bind) afresh
        return out

    @property
    def fused_decode_reason(self) -> str | None:
        """Why the last DECODE pass ran op by op (None: it ran fused); without a fused path,
        why the stack has none."""
        return self._fused.reason if self._fused is not None else self._decode_path.reason

    def _run(
        self,
        input_ids: torch.Tensor,
        meta: BatchMetadata,
        cache: PagedKVCache,
        output_hidden_states: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        h = self.embedding(input_ids, meta.positions)
        hidden: list[torch.Tensor] = [h]
        # the layers share one lookup of the rotary rows (a compiled graph computes it once anyway)
        with nullcontext() if torch.compiler.is_compiling() else pass_scope():
            for layer, layer_cache in zip(self.layers, cache.layers, strict=True):
                h = layer(h, meta, layer_cache)
                if output_hidden_states:
                    hidden.append(h)
        logits = self.lm_head(self.final_norm(h[meta.logits_indices]))
        if not output_hidden_states:
            return logits
        hidden[-1] = self.final_norm(h)
        return logits, tuple(hidden)

    # -- compiled decode ---------------------------------------------------------------
    def compile_decode(
        self,
        enabled: bool = True,
        *,
        max_batch: int = 1,
        capture_graph: bool | None = None,
        backend: str = "inductor",
    ) -> None:
        """Run DECODE passes of at most ``max_batch`` sequences through ``torch.compile``
        (dynamic shapes: one graph serves every context length). The first compiled pass
        traces and compiles (a minute or two for a 30-layer model on a small CPU; inductor's
        on-disk cache makes the next process faster). ``capture_graph`` (default: tttv2-hw's
        choice for this device) also captures the step as a CUDA graph on CUDA devices.
        ``backend`` is torch.compile's. ``enabled=False`` goes back to eager."""
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(
                f"compile_decode: max_batch={max_batch!r} is invalid: expected an integer >= 1"
            )
        self._compile_request = bool(enabled)
        self._compile_options = {
            "max_batch": max_batch,
            "capture_graph": capture_graph,
            "backend": backend,
        }
        self.prepare_decode()

    def _compiled_step(self, device: torch.device, params: Any) -> Callable[..., Any]:
        options = self._compile_options
        self._decode_max_batch = options["max_batch"]
        capture_graph = options["capture_graph"]
        if capture_graph is None:
            capture_graph = bool(params is not None and params.capture_graph)
        backend = options["backend"]
        capture = capture_graph and device.type == "cuda" and backend == "inductor"
        mode = "reduce-overhead" if capture else None  # None: torch.compile's default mode
        return torch.compile(self._run, dynamic=True, backend=backend, mode=mode)

    @property
    def decode_compiled(self) -> bool:
        return self._decode_step is not None

    def new_cache(
        self, num_blocks: int, block_size: int | None = None, dtype: torch.dtype | None = None
    ) -> PagedKVCache:
        """A zeroed paged KV cache for this stack's layers, on the parameters' device and,
        unless ``dtype`` is given, in their dtype (``block_size=None``: tttv2-hw's default)."""
        weight = self.embedding.weight
        return PagedKVCache.for_specs(
            [layer.attention for layer in self.spec.layers],
            num_blocks,
            block_size,
            dtype=dtype if dtype is not None else weight.dtype,
            device=weight.device,
        )

    def _check(self, input_ids: torch.Tensor, meta: BatchMetadata, cache: PagedKVCache) -> None:
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 1:
            got = (
                tuple(input_ids.shape)
                if isinstance(input_ids, torch.Tensor)
                else type(input_ids).__name__
            )
            raise ValueError(
                f"TransformerStack: input_ids must be [T] (tokens flattened), got {got}"
            )
        if input_ids.shape[0] != meta.num_tokens:
            raise ValueError(
                f"TransformerStack: {input_ids.shape[0]} input ids but meta describes {meta.num_tokens} "
                f"tokens (query_lens {meta.query_lens})"
            )
        if len(cache) != len(self.layers):
            raise ValueError(
                f"TransformerStack: cache has {len(cache)} layers, the model {len(self.layers)}"
            )

    @property
    def num_layers(self) -> int:
        return len(self.layers)
