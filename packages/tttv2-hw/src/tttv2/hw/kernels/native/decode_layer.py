"""A whole pre-norm decoder layer's decode step in one native call (``decode_layer.c`` here).

At decode a small model's layer is ~20 eager operations of a few microseconds of dispatch
each around a few hundred microseconds of weight streaming; on the 2-core machines here
that dispatch was a third of a SmolLM2-135M step. :class:`NativeDecodeLayer` binds one
layer's weights and numbers once; each step then costs one call per layer, which runs the
same three native kernels (RMSNorm, few-row linear, paged decode attention) with the
rotation, cache write, gated activation and residual sums between them, rounded where the
eager operations round (results equal the eager path's up to the last bit of the
activation, whose ``exp`` differs).

The layer it computes (a block spec decides whether a layer is one; nothing here knows
a model)::

    h += [post_attn_norm](o_proj(paged_attention(rope(q), rope(k) and v written at slot_mapping)))
         with q, k, v = qkv_proj(rms_norm(h))            (fused projection, optional bias)
         and each q and k head [q_norm, k_norm]-ed        (QK-norm, before the rotation)
    h += [post_ffn_norm](down_proj(act(gate) * up)) with gate, up = gate_up_proj(rms_norm(h)),
         act in {"silu", "gelu_tanh"}

Bracketed norms are optional RMSNorms (absent when their weights are None), each with its
own epsilon and unit offset; attention honours the layer's scale, logit soft-cap and
sliding window.

Inference only, CPU tensors, 1-16 rows (:data:`MAX_ROWS`).
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

import torch

from tttv2.hw.kernels.decode_layers import DecodeLayerShape, DecodeLayerWeights, DecodeMoE
from tttv2.hw.kernels.native.build import (
    NativeKernelUnavailable,
    native_function,
    native_lookup,
)
from tttv2.hw.kernels.native.decode_moe import NativeDecodeMoE
from tttv2.hw.kernels.native.skinny_linear import CHUNK_BYTES, INT8_CODE, SKINNY_MAX_ROWS
from tttv2.hw.kernels.native.tensors import DTYPE_CODES, native_allowed

if TYPE_CHECKING:
    from _ctypes import CFuncPtr

#: Most rows (sequences) one call serves: the few-row linear kernel's range.
MAX_ROWS = SKINNY_MAX_ROWS
#: The activations of the gated feed-forward the kernel computes, by their spec names.
ACTIVATIONS = {"silu": 0, "gelu_tanh": 1}

_p = ctypes.c_void_p


class _Layer(ctypes.Structure):  # DecodeLayer in decode_layer.c
    _fields_ = [
        *((n, ctypes.c_int64) for n in ("hidden", "heads", "kv_heads", "head_dim", "rot_half", "inter", "window", "l2_bytes")),
        *((n, ctypes.c_float) for n in ("attn_eps", "ffn_eps", "scale", "softcap")),
        *((n, ctypes.c_int32) for n in ("interleaved", "activation", "attn_unit_offset", "ffn_unit_offset", "wt", "nt")),
        *((n, _p) for n in ("attn_norm", "qkv_w", "qkv_b", "o_w", "o_b", "ffn_norm", "gu_w", "gu_b", "down_w", "down_b")),
        ("bt", ctypes.c_int32),
        *((n, _p) for n in ("qkv_s", "o_s", "gu_s", "down_s")),
        *((n, ctypes.c_float) for n in ("post_attn_eps", "post_ffn_eps", "qk_eps")),
        *((n, ctypes.c_int32) for n in ("post_attn_unit_offset", "post_ffn_unit_offset", "qk_unit_offset")),
        *((n, _p) for n in ("post_attn_norm", "post_ffn_norm", "q_norm", "k_norm")),
        ("moe", _p),
    ]  # fmt: skip


class _Step(ctypes.Structure):  # DecodeStep in decode_layer.c
    _fields_ = [
        ("rows", ctypes.c_int64), ("width", ctypes.c_int64), ("work_bytes", ctypes.c_int64),
        ("ht", ctypes.c_int32), ("ct", ctypes.c_int32),
        ("h", _p), ("slots", _p), ("tables", _p), ("seq_lens", _p), ("work", _p),
    ]  # fmt: skip


_ARGTYPES = (
    ctypes.POINTER(_Layer),
    ctypes.POINTER(_Step),
    _p,
    _p,
    _p,
    _p,
    ctypes.c_int,
    ctypes.c_int64,
    ctypes.c_int64,
)


@native_lookup
def decode_layer_kernel() -> CFuncPtr | NativeKernelUnavailable:
    """The C function, or why there is none (built once per process, cached on disk)."""
    return native_function("decode_layer", "tttv2_decode_layer", _ARGTYPES)


@native_lookup
def _workspace_fn() -> CFuncPtr:
    build = decode_layer_kernel()
    if isinstance(build, NativeKernelUnavailable):
        raise build
    fn = native_function(
        "decode_layer",
        "tttv2_decode_layer_workspace",
        (ctypes.POINTER(_Layer), ctypes.c_int64, ctypes.c_int),
    )
    if isinstance(fn, NativeKernelUnavailable):  # the library built above; only narrows the type
        raise fn
    fn.restype = ctypes.c_int64
    return fn


def native_decode_layer_available() -> bool:
    """Whether the kernel is built (or buildable) here and usable now (not while
    torch.compile traces, not while autograd records)."""
    return (
        native_allowed()
        and not torch.is_grad_enabled()
        and not isinstance(decode_layer_kernel(), NativeKernelUnavailable)
    )


class NativeDecodeLayer:
    """``layer(step, k_pool, v_pool, cos, sin)`` runs one decode step of the layer on
    ``step.hidden`` in place. Construction checks every tensor (``ValueError`` naming it)
    and keeps them alive; the layer's weights must not be replaced while it is used.

    With ``moe`` the feed-forward is a mixture of experts (``self.moe``, a
    :class:`~tttv2.hw.kernels.native.decode_moe.NativeDecodeMoE`): such a layer runs only
    in a :class:`~tttv2.hw.kernels.native.decode_stack.NativeDecodeStack`, which stops
    for its routing."""

    def __init__(
        self, weights: DecodeLayerWeights, shape: DecodeLayerShape, moe: DecodeMoE | None = None
    ) -> None:
        fn = decode_layer_kernel()
        if isinstance(fn, NativeKernelUnavailable):
            raise fn
        self._fn = fn
        self.weights, self.shape = weights, shape
        hidden, inter = _check_layer(weights, shape, moe is not None)
        w = weights
        self.moe = None if moe is None else NativeDecodeMoE(moe, w, hidden)

        def ptr(t: torch.Tensor | None) -> int | None:
            return t.data_ptr() if t is not None else None

        # int8 projections compute in the norms' dtype (the activations'); others in their own
        dtype = w.attn_norm.dtype if w.int8 else w.qkv_weight.dtype
        self._args = _Layer(
            hidden, shape.num_heads, shape.num_kv_heads, shape.head_dim, shape.rotary_dim // 2, inter,
            shape.sliding_window or 0, CHUNK_BYTES,
            shape.attn_norm_eps, shape.ffn_norm_eps, shape.scale, shape.softcap or 0.0,
            int(shape.interleaved), ACTIVATIONS[shape.activation], int(shape.attn_norm_unit_offset),
            int(shape.ffn_norm_unit_offset), INT8_CODE if w.int8 else DTYPE_CODES[dtype], DTYPE_CODES[w.attn_norm.dtype],
            ptr(w.attn_norm), ptr(w.qkv_weight), ptr(w.qkv_bias), ptr(w.o_weight), ptr(w.o_bias),
            ptr(w.ffn_norm), ptr(w.gate_up_weight), ptr(w.gate_up_bias), ptr(w.down_weight), ptr(w.down_bias),
            DTYPE_CODES[dtype], ptr(w.qkv_scale), ptr(w.o_scale), ptr(w.gate_up_scale), ptr(w.down_scale),
            shape.post_attn_norm_eps, shape.post_ffn_norm_eps, shape.qk_norm_eps,
            int(shape.post_attn_norm_unit_offset), int(shape.post_ffn_norm_unit_offset), int(shape.qk_norm_unit_offset),
            ptr(w.post_attn_norm), ptr(w.post_ffn_norm), ptr(w.q_norm), ptr(w.k_norm),
            self.moe.address if self.moe is not None else None,
        )  # fmt: skip
        self._ref = ctypes.byref(self._args)
        #: the address of the bound layer's argument struct (``DecodeLayer`` in decode_layer.c)
        self.args_address = ctypes.addressof(self._args)
        #: the dtype of the hidden rows, activations and biases
        self.dtype = dtype
        self.hidden = hidden

    def workspace_bytes(self, rows: int, dtype: torch.dtype) -> int:
        return int(_workspace_fn()(self._ref, rows, DTYPE_CODES[dtype]))

    def __call__(
        self,
        step: NativeDecodeStep,
        k_pool: torch.Tensor,
        v_pool: torch.Tensor,
        cos: torch.Tensor | None,
        sin: torch.Tensor | None,
    ) -> None:
        """One step: ``k_pool, v_pool [num_blocks, block_size, Hkv, D]`` (contiguous, one
        dtype), ``cos, sin [rows, rotary_dim/2]`` of the step's positions (contiguous, the
        step's ``cos_dtype``; None without rotation)."""
        if self.moe is not None:
            raise ValueError(
                "NativeDecodeLayer: a mixture-of-experts layer runs in a NativeDecodeStack "
                "(which stops for its routing), not alone"
            )
        num_blocks, block_size = k_pool.shape[0], k_pool.shape[1]
        status = self._fn(
            self._ref, step.ref,
            cos.data_ptr() if cos is not None else None, sin.data_ptr() if sin is not None else None,
            k_pool.data_ptr(), v_pool.data_ptr(), DTYPE_CODES[k_pool.dtype], num_blocks, block_size,
        )  # fmt: skip
        if status != 0:
            raise status_error(status, step, k_pool)

    def check_step(
        self,
        step: NativeDecodeStep,
        k_pool: torch.Tensor,
        v_pool: torch.Tensor,
        cos: torch.Tensor | None,
    ) -> None:
        """Raise ``ValueError`` unless ``step``, the pools and the cos rows fit this layer
        (callers check once per pass, then call without checks)."""
        if step.hidden.dtype != self.dtype or step.hidden.shape[1] != self.hidden:
            raise ValueError(
                f"NativeDecodeLayer: hidden rows {tuple(step.hidden.shape)} {step.hidden.dtype} do not fit a layer "
                f"of width {self.hidden} in {self.dtype}"
            )
        self.check_pools(k_pool, v_pool)
        self.check_cos(cos, step.rows, step.cos_dtype)

    def check_pools(self, k_pool: torch.Tensor, v_pool: torch.Tensor) -> None:
        """Raise ``ValueError`` unless the pools are contiguous CPU ``[num_blocks, block_size,
        Hkv, D]`` tensors of one shape and dtype."""
        s = self.shape
        kv_shape = (s.num_kv_heads, s.head_dim)
        for name, pool in (("k_pool", k_pool), ("v_pool", v_pool)):
            if (
                pool.dim() != 4
                or tuple(pool.shape[2:]) != kv_shape
                or pool.shape != k_pool.shape
                or pool.dtype != k_pool.dtype
                or pool.dtype not in DTYPE_CODES
                or not pool.is_contiguous()
                or not pool.is_cpu
            ):
                raise ValueError(
                    f"NativeDecodeLayer: {name} {tuple(pool.shape)} {pool.dtype} must be a contiguous CPU "
                    f"[num_blocks, block_size, {kv_shape[0]}, {kv_shape[1]}] pool like k_pool"
                )

    def check_cos(self, cos: torch.Tensor | None, rows: int, cos_dtype: torch.dtype) -> None:
        """Raise ``ValueError`` unless ``cos`` (and so its ``sin``) holds ``rows`` contiguous
        CPU rows of ``rotary_dim / 2`` values in ``cos_dtype`` (anything without rotation)."""
        want = (rows, self.shape.rotary_dim // 2)
        if self.shape.rotary_dim and (
            cos is None
            or tuple(cos.shape[1:]) != want[1:]
            or cos.shape[0] < rows
            or cos.dtype != cos_dtype
            or not cos.is_contiguous()
            or not cos.is_cpu
        ):
            got = None if cos is None else (tuple(cos.shape), cos.dtype)
            raise ValueError(
                f"NativeDecodeLayer: cos/sin rows must be {want} in {cos_dtype} (contiguous CPU), got {got}"
            )


class NativeDecodeStep:
    """The rows of one decode pass, shared by its layers: ``hidden [rows, width]`` (updated
    in place by every layer), ``slot_mapping [rows]`` (where each row's new K/V goes),
    ``block_tables [rows, W]`` and ``seq_lens [rows]`` (int64, as the paged cache reads
    them), the dtype of the cos/sin rows, and a workspace of ``workspace_bytes``."""

    def __init__(
        self,
        hidden: torch.Tensor,
        slot_mapping: torch.Tensor,
        block_tables: torch.Tensor,
        seq_lens: torch.Tensor,
        cos_dtype: torch.dtype,
        workspace_bytes: int,
    ) -> None:
        rows = hidden.shape[0] if hidden.dim() == 2 else -1
        if (
            hidden.dim() != 2
            or not hidden.is_contiguous()
            or not hidden.is_cpu
            or hidden.dtype not in DTYPE_CODES
        ):
            raise ValueError(
                f"NativeDecodeStep: hidden must be contiguous CPU [rows, width], got {tuple(hidden.shape)}"
            )
        if not 1 <= rows <= MAX_ROWS:
            raise ValueError(f"NativeDecodeStep: {rows} rows; the kernel serves 1..{MAX_ROWS}")
        for name, t, dims in (
            ("slot_mapping", slot_mapping, 1),
            ("block_tables", block_tables, 2),
            ("seq_lens", seq_lens, 1),
        ):
            if (
                t.dtype != torch.int64
                or t.dim() != dims
                or t.shape[0] != rows
                or not t.is_contiguous()
                or not t.is_cpu
            ):
                raise ValueError(
                    f"NativeDecodeStep: {name} must be a contiguous CPU int64 tensor of {dims} dims with "
                    f"{rows} rows, got {tuple(t.shape)} {t.dtype}"
                )
        if cos_dtype not in DTYPE_CODES:
            raise ValueError(
                f"NativeDecodeStep: cos/sin dtype {cos_dtype} is not one of {list(DTYPE_CODES)}"
            )
        self.hidden, self.rows, self.cos_dtype = hidden, rows, cos_dtype
        self._keep = (slot_mapping, block_tables, seq_lens)
        self.workspace = torch.empty(max(workspace_bytes, 1), dtype=torch.uint8)
        self._args = _Step(
            rows, block_tables.shape[1], workspace_bytes, DTYPE_CODES[hidden.dtype], DTYPE_CODES[cos_dtype],
            hidden.data_ptr(), slot_mapping.data_ptr(), block_tables.data_ptr(), seq_lens.data_ptr(),
            self.workspace.data_ptr(),
        )  # fmt: skip
        #: the step's argument struct, by reference (``DecodeStep`` in decode_layer.c)
        self.ref = ctypes.byref(self._args)

    def normed_rows(self) -> torch.Tensor:
        """The workspace's first ``[rows, width]`` values: a layer's ``ffn_norm`` output
        while a stack call is stopped for that (mixture-of-experts) layer's routing."""
        rows, width = self.hidden.shape
        size = rows * width * self.hidden.element_size()
        return self.workspace[:size].view(self.hidden.dtype).view(rows, width)


#: The tensors of :class:`DecodeLayerWeights` that may be None.
_OPTIONAL = frozenset(
    (
        "qkv_bias",
        "o_bias",
        "gate_up_bias",
        "down_bias",
        "post_attn_norm",
        "post_ffn_norm",
        "q_norm",
        "k_norm",
    )
)


#: The dense feed-forward's weights, which a mixture-of-experts layer without a shared expert lacks.
_SHARED_EXPERT = frozenset(("gate_up_weight", "down_weight"))


def _check_layer(w: DecodeLayerWeights, s: DecodeLayerShape, moe: bool) -> tuple[int, int]:
    """(hidden, intermediate) after checking every tensor and number; ValueError names the
    bad one. A ``moe`` layer's dense feed-forward (its shared expert) may be absent
    (intermediate 0) and its weights may not be int8."""
    if s.activation not in ACTIVATIONS:
        raise ValueError(
            f"NativeDecodeLayer: activation {s.activation!r} is not one of {sorted(ACTIVATIONS)}"
        )
    H, Hkv, D = s.num_heads, s.num_kv_heads, s.head_dim
    if min(H, Hkv, D) < 1 or H % Hkv or s.rotary_dim % 2 or not 0 <= s.rotary_dim <= D:
        raise ValueError(
            f"NativeDecodeLayer: heads {H}/{Hkv}, head_dim {D}, rotary_dim {s.rotary_dim} are inconsistent"
        )
    hidden = w.attn_norm.shape[0] if w.attn_norm.dim() == 1 else -1
    down = w.down_weight
    inter = (down.shape[1] if down.dim() == 2 else -1) if down is not None else 0
    int8 = w.int8
    if moe and int8:
        raise ValueError("NativeDecodeLayer: a mixture-of-experts layer cannot have int8 weights")
    if moe and (w.gate_up_weight is None) != (down is None):
        raise ValueError(
            "NativeDecodeLayer: a shared expert needs both gate_up_weight and down_weight (or neither)"
        )
    dtype = w.attn_norm.dtype if int8 else w.qkv_weight.dtype  # the activations' and biases'
    scales = {
        "qkv_scale": (w.qkv_scale, (H + 2 * Hkv) * D), "o_scale": (w.o_scale, hidden),
        "gate_up_scale": (w.gate_up_scale, 2 * inter), "down_scale": (w.down_scale, hidden),
    }  # fmt: skip
    for name, (t, rows) in scales.items():
        if not int8:
            if t is not None:
                raise ValueError(f"NativeDecodeLayer: {name} is given but the weights are not int8")
            continue
        if (
            t is None
            or tuple(t.shape) != (rows,)
            or t.dtype != torch.float32
            or not t.is_contiguous()
            or not t.is_cpu
        ):
            got = None if t is None else (tuple(t.shape), t.dtype)
            raise ValueError(
                f"NativeDecodeLayer: int8 weights need {name} as a contiguous CPU float32 ({rows},) tensor, got {got}"
            )
    shapes = {
        "attn_norm": (w.attn_norm, (hidden,)), "ffn_norm": (w.ffn_norm, (hidden,)),
        "qkv_weight": (w.qkv_weight, ((H + 2 * Hkv) * D, hidden)), "qkv_bias": (w.qkv_bias, ((H + 2 * Hkv) * D,)),
        "o_weight": (w.o_weight, (hidden, H * D)), "o_bias": (w.o_bias, (hidden,)),
        "gate_up_weight": (w.gate_up_weight, (2 * inter, hidden)), "gate_up_bias": (w.gate_up_bias, (2 * inter,)),
        "down_weight": (w.down_weight, (hidden, inter)), "down_bias": (w.down_bias, (hidden,)),
        "post_attn_norm": (w.post_attn_norm, (hidden,)), "post_ffn_norm": (w.post_ffn_norm, (hidden,)),
        "q_norm": (w.q_norm, (D,)), "k_norm": (w.k_norm, (D,)),
    }  # fmt: skip
    if (w.q_norm is None) != (w.k_norm is None):
        raise ValueError(
            "NativeDecodeLayer: q_norm and k_norm must both be given (QK-norm) or both be None"
        )
    optional = _OPTIONAL | _SHARED_EXPERT if moe else _OPTIONAL
    for name, (t, shape) in shapes.items():
        if t is None:
            if name not in optional:
                raise ValueError(f"NativeDecodeLayer: {name} is missing")
            continue
        norm = name.endswith("norm")
        int8_weight = int8 and name.endswith("weight")
        want = torch.int8 if int8_weight else w.attn_norm.dtype if norm else dtype
        if (
            tuple(t.shape) != shape
            or min(shape) < 1
            or not t.is_contiguous()
            or not t.is_cpu
            or (t.dtype not in DTYPE_CODES and not int8_weight)
            or t.dtype != want
        ):
            whose = (
                "the norms'"
                if norm
                else "int8"
                if int8_weight
                else ("the activations' (the norms')" if int8 else "the projections'")
            )
            raise ValueError(
                f"NativeDecodeLayer: {name} is {tuple(t.shape)} {t.dtype} "
                f"({'contiguous' if t.is_contiguous() else 'strided'}, {t.device}); expected a contiguous CPU "
                f"{shape} tensor in {whose} dtype"
            )
    return hidden, inter


def status_error(status: int, step: NativeDecodeStep, k_pool: torch.Tensor) -> Exception:
    if status == 3:
        return ValueError(
            f"NativeDecodeLayer: a slot, block table entry or sequence length is outside the cache "
            f"({k_pool.shape[0]} blocks of {k_pool.shape[1]}, {step.rows} rows), or a routing's counts are "
            f"negative or do not sum to its assignments, or a routed row is outside the step"
        )
    if status == 2:
        return ValueError("NativeDecodeLayer: the step's workspace is too small for this layer")
    return RuntimeError(f"decode_layer kernel failed with status {status}")
