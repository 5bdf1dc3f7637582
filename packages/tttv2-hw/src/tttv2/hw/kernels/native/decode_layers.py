"""The native CPU ``decode_layers`` kernel (x86 CPUs with AVX2): the layers of a decode
step as one call into ``decode_layer.c`` (see :mod:`tttv2.hw.kernels.decode_layers` for
the contract).

Binding builds a :class:`~tttv2.hw.kernels.native.decode_layer.NativeDecodeLayer` per
layer (weights checked and pointers taken once), cos/sin row buffers per distinct rotary
spec (layers that rotate alike share one pair) and a
:class:`~tttv2.hw.kernels.native.decode_stack.NativeDecodeStack` over the cache's pools.
A step then fills the rotary rows and makes one native call for all the layers; the
results are the eager blocks' (same kernels, same roundings) up to the last bit of the
activation's ``exp``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tttv2.hw.kernels.decode_layers import DecodeLayer, DecodeLayersUnsupported, RotaryRows
from tttv2.hw.kernels.native.build import NativeKernelUnavailable
from tttv2.hw.kernels.native.decode_layer import (
    MAX_ROWS,
    NativeDecodeLayer,
    NativeDecodeStep,
    decode_layer_kernel,
)
from tttv2.hw.kernels.native.decode_stack import NativeDecodeStack
from tttv2.hw.kernels.native.tensors import native_allowed


class NativeDecodeLayersProgram:
    """Layers bound to one cache's pools (a :class:`~tttv2.hw.kernels.decode_layers.DecodeLayersProgram`).
    Keeps every bound tensor alive; their storage must stay where it is while it is used."""

    max_rows = MAX_ROWS

    def __init__(
        self,
        layers: Sequence[DecodeLayer],
        k_pools: Sequence[torch.Tensor],
        v_pools: Sequence[torch.Tensor],
    ) -> None:
        if not layers:
            raise DecodeLayersUnsupported("decode_layers: no layers to bind")
        try:
            kernels = [NativeDecodeLayer(layer.weights, layer.shape, layer.moe) for layer in layers]
        except (
            ValueError
        ) as reason:  # dtypes, devices, layouts, activations the kernel does not take
            raise DecodeLayersUnsupported(str(reason)) from None
        dtype = kernels[0].dtype
        # (rotary, cos rows, sin rows) per distinct rotary spec; layers without rotation get Nones
        shared: dict[object, tuple[RotaryRows, torch.Tensor, torch.Tensor]] = {}
        per_layer: list[tuple[torch.Tensor | None, torch.Tensor | None]] = []
        for layer in layers:
            rotary = layer.rotary
            if rotary is None or not layer.shape.rotary_dim:
                per_layer.append((None, None))
                continue
            if rotary.spec not in shared:
                rows = (MAX_ROWS, layer.shape.rotary_dim // 2)
                shared[rotary.spec] = (
                    rotary,
                    torch.zeros(rows, dtype=dtype),
                    torch.zeros(rows, dtype=dtype),
                )
            per_layer.append(shared[rotary.spec][1:])
        self.rotations = list(shared.values())
        # per row count, the rotations with their buffers' first rows as views: slicing
        # them every step costs two tensor ops per rotation, each ~30 us cold
        self._rotations_for: dict[int, list[tuple[RotaryRows, torch.Tensor, torch.Tensor]]] = {}
        try:
            self.stack = NativeDecodeStack(
                kernels, k_pools, v_pools, [c for c, _ in per_layer], [s for _, s in per_layer]
            )
        except ValueError as reason:  # a cache the kernel does not take (dtype, layout)
            raise DecodeLayersUnsupported(str(reason)) from None
        self.workspace_bytes = max(k.workspace_bytes(1, dtype) for k in kernels)  # per row

    def blocker(self) -> str | None:
        if torch.is_grad_enabled() or not native_allowed():
            return "native decode layer unavailable (autograd recording or compiling)"
        return None

    def __call__(
        self,
        hidden: torch.Tensor,
        positions: torch.Tensor,
        slot_mapping: torch.Tensor,
        block_tables: torch.Tensor,
        seq_lens: torch.Tensor,
        max_seq_len: int,
    ) -> None:
        rows = hidden.shape[0]
        step = NativeDecodeStep(
            hidden,
            slot_mapping,
            block_tables.contiguous(),
            seq_lens,
            hidden.dtype,
            rows * self.workspace_bytes,
        )
        rotations = self._rotations_for.get(rows)
        if rotations is None:
            rotations = [(r, cos[:rows], sin[:rows]) for r, cos, sin in self.rotations]
            self._rotations_for[rows] = rotations
        for rotary, cos_rows, sin_rows in rotations:
            rotary.cos_sin_into(positions, cos_rows, sin_rows, max_seq_len)
        self.stack(step)


class NativeDecodeLayers:
    """The ``torch-cpu`` backend's ``decode_layers`` kernel (mixture-of-experts layers
    included)."""

    takes_moe = True

    def unavailable(self) -> str | None:
        built = decode_layer_kernel()
        if isinstance(built, NativeKernelUnavailable):
            return f"native decode layer kernel unavailable: {built}"
        return None

    def __call__(
        self,
        layers: Sequence[DecodeLayer],
        k_pools: Sequence[torch.Tensor],
        v_pools: Sequence[torch.Tensor],
    ) -> NativeDecodeLayersProgram:
        reason = self.unavailable()
        if reason is not None:
            raise DecodeLayersUnsupported(reason)
        return NativeDecodeLayersProgram(layers, k_pools, v_pools)


NATIVE_DECODE_LAYERS = NativeDecodeLayers()
