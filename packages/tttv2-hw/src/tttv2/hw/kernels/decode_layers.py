"""The ``decode_layers`` kernel op: every decoder layer of a decode step in one backend call.

A decode step of a small model is mostly dispatch around the weight reads; a backend that
can run whole layers (one native call on a CPU; a CUDA graph or a ttnn trace elsewhere)
registers this op and the blocks hand it the layers. The contract, device-independent:

1. A decoder layer describes itself as a :class:`DecodeLayer` (its weights, its numbers
   and the rotary table that serves its cos/sin rows); in tttv2-blocks
   ``DecoderLayer.decode_weights()`` returns one, or the reason the layer cannot be run
   this way.
2. ``kernel = get_kernel("decode_layers", device)`` is a :class:`DecodeLayersKernel`:
   ``kernel.unavailable()`` says why it cannot run on this process at all (``None``: it
   can), and ``kernel(layers, k_pools, v_pools)`` binds the layers to one cache's pools
   and returns a :class:`DecodeLayersProgram`, or raises :class:`DecodeLayersUnsupported`
   naming what it cannot take (a dtype, an activation, a layout).
3. ``program(hidden, positions, slot_mapping, block_tables, seq_lens, max_seq_len)`` runs
   every layer, in order, on ``hidden [rows, width]`` in place and writes each layer's new
   keys and values into its pools; ``program.blocker()`` says why a pass cannot run now
   (autograd recording, torch.compile tracing); ``program.max_rows`` is the most rows a
   call serves.

Mixture-of-experts layers (:class:`DecodeMoE` in ``DecodeLayer.moe``): the feed-forward is
the chosen routed experts (plus an optional, optionally gated, shared expert in the dense
feed-forward's place). The router is the block's own code: the kernel hands it the step's
normed rows between the attention and the experts (``DecodeMoE.route``) and computes what
it returns, so routing (ties included) is exactly what the op-by-op block computes. Only a
kernel whose ``takes_moe`` is true gets such layers (:func:`takes_moe_layers`); blocks run
them op by op on any other.

The generic ``torch`` backend's kernel is :data:`NO_DECODE_LAYERS` (always unavailable:
blocks run the layers op by op); ``torch-cpu`` registers the native one
(:mod:`tttv2.hw.kernels.native.decode_layers`). A backend for another device registers
its own with :func:`~tttv2.hw.kernels.register_kernel` (``"decode_layers"``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from tttv2.core.errors import TTTv2Error

SIGNATURE = (
    "kernel(layers: [DecodeLayer], k_pools, v_pools) -> DecodeLayersProgram; "
    "program(hidden [rows,width] in place, positions, slot_mapping, block_tables, seq_lens, max_seq_len)"
)


class DecodeLayersUnsupported(TTTv2Error, ValueError):
    """The ``decode_layers`` kernel cannot run these layers (the message says why)."""


@dataclass(frozen=True)
class DecodeLayerWeights:
    """One layer's tensors in Hugging Face layout (``weight [out, in]``); biases may be None.
    ``qkv_weight`` rows are ``[q (H*D); k (Hkv*D); v (Hkv*D)]``, ``gate_up_weight`` rows
    ``[gate (I); up (I)]``. Projection weights and biases share one dtype, the norms another.
    In a mixture-of-experts layer (``DecodeLayer.moe``) ``gate_up_weight`` and
    ``down_weight`` are the shared expert's, or both None when it has none.

    Optional norms (None: absent): ``post_attn_norm`` and ``post_ffn_norm [hidden]`` (the
    sandwich norms of Gemma 2/3, on the attention and feed-forward outputs before their
    residual sums) and ``q_norm``, ``k_norm [head_dim]`` (QK-norm, Qwen3 and Gemma 3: each
    q and k head normalized before the rotation; both or neither).

    Weight-only int8 (:func:`tttv2.hw.precision.quantize_int8`): the four projection
    weights are int8 codes and the ``*_scale`` tensors their float32 scales (one per
    output row); biases are then in the activation dtype, the norms' dtype. Without int8
    the scales are None."""

    attn_norm: torch.Tensor
    qkv_weight: torch.Tensor
    qkv_bias: torch.Tensor | None
    o_weight: torch.Tensor
    o_bias: torch.Tensor | None
    ffn_norm: torch.Tensor
    gate_up_weight: torch.Tensor | None
    gate_up_bias: torch.Tensor | None
    down_weight: torch.Tensor | None
    down_bias: torch.Tensor | None
    qkv_scale: torch.Tensor | None = None
    o_scale: torch.Tensor | None = None
    gate_up_scale: torch.Tensor | None = None
    down_scale: torch.Tensor | None = None
    post_attn_norm: torch.Tensor | None = None
    post_ffn_norm: torch.Tensor | None = None
    q_norm: torch.Tensor | None = None
    k_norm: torch.Tensor | None = None

    @property
    def int8(self) -> bool:
        """Whether the projection weights are int8 codes with per-row scales."""
        return self.qkv_weight.dtype == torch.int8


@dataclass(frozen=True)
class DecodeLayerShape:
    """The numbers of the layer: heads, rotary width (0: no rotation), the gated
    activation (by its spec name), norm epsilons and unit offsets, attention scale,
    soft-cap and window (``None``: none). The optional norms' numbers (see
    :class:`DecodeLayerWeights`) are read only where their weights are present."""

    num_heads: int
    num_kv_heads: int
    head_dim: int
    rotary_dim: int
    interleaved: bool
    activation: str
    attn_norm_eps: float
    ffn_norm_eps: float
    attn_norm_unit_offset: bool
    ffn_norm_unit_offset: bool
    scale: float
    softcap: float | None
    sliding_window: int | None
    post_attn_norm_eps: float = 1e-6
    post_ffn_norm_eps: float = 1e-6
    post_attn_norm_unit_offset: bool = False
    post_ffn_norm_unit_offset: bool = False
    qk_norm_eps: float = 1e-6
    qk_norm_unit_offset: bool = False


@runtime_checkable
class RotaryRows(Protocol):
    """What serves a layer's cos/sin rows: layers whose ``spec`` is equal share one pair of
    row buffers, filled once per step by ``cos_sin_into`` (tttv2-blocks' ``RotaryEmbedding``)."""

    spec: Hashable

    def cos_sin_into(
        self, positions: torch.Tensor, cos_out: torch.Tensor, sin_out: torch.Tensor, seq_len: int
    ) -> None: ...


@dataclass(frozen=True)
class DecodeRouting:
    """One MoE layer's routing of a decode step's rows, as its router decided it:
    ``rows [A]`` (int64) the row of each (row, expert) assignment and ``weights [A]``
    (float32) its routing weight, the assignments grouped by expert in ascending expert id
    (within a group in any order); ``counts [num_experts]`` (int64) the assignments per
    expert (0: not chosen, not read); ``shared_gate [rows, 1]`` in the activation dtype
    scales the shared expert's output (``sigmoid(x @ w_g)`` as the block rounds it), None:
    unscaled (or no shared expert)."""

    rows: torch.Tensor
    weights: torch.Tensor
    counts: torch.Tensor
    shared_gate: torch.Tensor | None = None


@dataclass(frozen=True)
class DecodeMoE:
    """The routed experts of a mixture-of-experts layer::

        n = ffn_norm(h)
        routing = route(n)        # the block's router, called by the kernel with n [rows, hidden]
        y[r] = sum over r's assignments a of weights[a] * down_e(act(gate_e(n[r])) * up_e(n[r]))
        y += shared_gate * shared_expert(n)       # when the layer has a shared expert
        h += [post_ffn_norm](y)

    ``experts[e] = (gate [I, hidden], up [I, hidden], down [hidden, I])`` in the
    projections' dtype, by expert id; ``activation`` the experts' gated activation by its
    spec name (the shared expert's is ``DecodeLayerShape.activation``). ``route`` must
    not keep or change the rows it is handed (the kernel's workspace). Each expert's
    output is rounded to the activation dtype, times its float32 weight rounded again,
    summed into ``y`` in ascending expert id, as the op-by-op block sums."""

    experts: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    route: Callable[[torch.Tensor], DecodeRouting]
    activation: str


@dataclass(frozen=True)
class DecodeLayer:
    """What a pre-norm decoder layer hands the ``decode_layers`` op::

        h += [post_attn_norm](o_proj(paged_attention(rope(q), rope(k) and v written at slot_mapping)))
             with q, k, v = qkv_proj(rms_norm(h)), q and k heads [q_norm, k_norm]-ed
        h += [post_ffn_norm](down_proj(act(gate) * up)) with gate, up = gate_up_proj(rms_norm(h))

    (bracketed: optional, all RMSNorms; see :class:`DecodeLayerWeights`).

    ``rotary`` is None for a layer without rotation (``shape.rotary_dim == 0``); ``moe``
    makes the feed-forward a mixture of experts (:class:`DecodeMoE`; None: dense)."""

    weights: DecodeLayerWeights
    shape: DecodeLayerShape
    rotary: RotaryRows | None
    moe: DecodeMoE | None = None


class DecodeLayersProgram(Protocol):
    """Layers bound to one cache's pools by a ``decode_layers`` kernel (see the module docstring)."""

    max_rows: int

    def blocker(self) -> str | None: ...

    def __call__(
        self,
        hidden: torch.Tensor,
        positions: torch.Tensor,
        slot_mapping: torch.Tensor,
        block_tables: torch.Tensor,
        seq_lens: torch.Tensor,
        max_seq_len: int,
    ) -> None: ...


class DecodeLayersKernel(Protocol):
    """The registered ``decode_layers`` kernel (see the module docstring)."""

    def unavailable(self) -> str | None: ...

    def __call__(
        self,
        layers: Sequence[DecodeLayer],
        k_pools: Sequence[torch.Tensor],
        v_pools: Sequence[torch.Tensor],
    ) -> DecodeLayersProgram: ...


def takes_moe_layers(kernel: DecodeLayersKernel) -> bool:
    """Whether ``kernel`` computes mixture-of-experts layers (``DecodeLayer.moe``): only a
    kernel that says so (``takes_moe = True``) gets them; one written before they existed
    would ignore ``moe`` and compute a dense feed-forward."""
    return getattr(kernel, "takes_moe", False) is True


class NoDecodeLayers:
    """The kernel of backends without one: unavailable, so the layers run op by op."""

    def unavailable(self) -> str | None:
        return "no decode_layers kernel for this device (layers run op by op)"

    def __call__(
        self,
        layers: Sequence[DecodeLayer],
        k_pools: Sequence[torch.Tensor],
        v_pools: Sequence[torch.Tensor],
    ) -> DecodeLayersProgram:
        raise DecodeLayersUnsupported(str(self.unavailable()))


NO_DECODE_LAYERS = NoDecodeLayers()


@dataclass(frozen=True)
class DecodeChoice:
    """How a device runs DECODE passes by tttv2-hw's knobs and registry: ``kind`` is
    ``"compiled"``, ``"fused"`` or ``"eager"``, ``reason`` says why, ``fuse`` whether the
    ``decode_layers`` kernel is usable (``kernel``; a compiled path falls back to it for
    larger batches)."""

    kind: str
    reason: str
    fuse: bool
    kernel: DecodeLayersKernel | None


def choose_decode_path(
    device: torch.device | str | None,
    *,
    compile: bool,
    fuse: bool,
    kernel: DecodeLayersKernel,
) -> DecodeChoice:
    """The decode path for ``device`` given whether to compile and to fuse (tttv2-hw's
    ``compile`` and ``fuse_decode_layers`` knobs, or the caller's choice) and the
    registry's ``decode_layers`` kernel for the device. One rule for the stack
    (``TransformerStack.decode_path``) and for ``tttv2 hw``."""
    reason = "fuse_decode_layers is off"
    if fuse:
        reason = kernel.unavailable() or ""
        fuse = not reason
        reason = (
            reason
            or "tttv2-hw's decode_layers kernel runs the layers in one call where they qualify"
        )
    if compile:
        beyond = "fused" if fuse else "eager"
        return DecodeChoice(
            "compiled", f"torch.compile of the whole step ({beyond} beyond its batch)", fuse, kernel
        )
    return DecodeChoice("fused" if fuse else "eager", reason, fuse, kernel)
