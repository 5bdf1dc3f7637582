"""The built-in torch backends: ``torch`` (any device), ``torch-cpu`` and ``torch-cuda``.

All three share the same PyTorch code except where a device has its own faster kernel
(``torch-cpu``'s ``linear``, ``int8_linear``, ``rms_norm``, ``paged_decode_attention``,
``decode_layers`` and ``routed_experts``: the native
kernels of :mod:`tttv2.hw.kernels.native` where they are built; matrix-vector products for
one row and fp32 products for long half-precision inputs on CPUs without native bf16).
"""

from __future__ import annotations

from tttv2.hw.kernels.decode_layers import NO_DECODE_LAYERS
from tttv2.hw.kernels.int8_linear import cpu_int8_linear, int8_linear
from tttv2.hw.kernels.linear import cpu_linear, linear
from tttv2.hw.kernels.native.decode_layers import NATIVE_DECODE_LAYERS
from tttv2.hw.kernels.native.routed_experts import native_routed_experts
from tttv2.hw.kernels.paged_decode_attention import (
    cpu_paged_decode_attention,
    paged_decode_attention,
)
from tttv2.hw.kernels.prefill_attention import prefill_attention
from tttv2.hw.kernels.registry import Kernel, register_kernel
from tttv2.hw.kernels.rms_norm import cpu_rms_norm, rms_norm
from tttv2.hw.kernels.rotary import apply_rotary
from tttv2.hw.kernels.routed_experts import no_routed_experts

TORCH_KERNELS: dict[str, Kernel] = {
    "prefill_attention": prefill_attention,
    "paged_decode_attention": paged_decode_attention,
    "rms_norm": rms_norm,
    "apply_rotary": apply_rotary,
    "linear": linear,
    "int8_linear": int8_linear,
    "decode_layers": NO_DECODE_LAYERS,
    "routed_experts": no_routed_experts,
}
TORCH_BACKENDS = ("torch", "torch-cpu", "torch-cuda")
#: Backend -> the ops where it has its own kernel instead of the shared one.
DEVICE_KERNELS: dict[str, dict[str, Kernel]] = {
    "torch-cpu": {
        "linear": cpu_linear,
        "int8_linear": cpu_int8_linear,
        "rms_norm": cpu_rms_norm,
        "paged_decode_attention": cpu_paged_decode_attention,
        "decode_layers": NATIVE_DECODE_LAYERS,
        "routed_experts": native_routed_experts,
    }
}


def register_torch_backends() -> None:
    for backend in TORCH_BACKENDS:
        for op, fn in {**TORCH_KERNELS, **DEVICE_KERNELS.get(backend, {})}.items():
            register_kernel(backend, op, fn)
