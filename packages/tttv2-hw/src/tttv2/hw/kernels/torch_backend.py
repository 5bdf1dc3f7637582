"""The built-in torch backends: ``torch`` (any device), ``torch-cpu`` and ``torch-cuda``.

All three share the same PyTorch code today; the device-specific names exist so a faster
CPU- or CUDA-only kernel can replace one op without touching the others.
"""

from __future__ import annotations

from tttv2.hw.kernels.paged_decode_attention import paged_decode_attention
from tttv2.hw.kernels.prefill_attention import prefill_attention
from tttv2.hw.kernels.registry import register_kernel
from tttv2.hw.kernels.rms_norm import rms_norm
from tttv2.hw.kernels.rotary import apply_rotary

TORCH_KERNELS = {
    "prefill_attention": prefill_attention,
    "paged_decode_attention": paged_decode_attention,
    "rms_norm": rms_norm,
    "apply_rotary": apply_rotary,
}
TORCH_BACKENDS = ("torch", "torch-cpu", "torch-cuda")


def register_torch_backends() -> None:
    for backend in TORCH_BACKENDS:
        for op, fn in TORCH_KERNELS.items():
            register_kernel(backend, op, fn)
