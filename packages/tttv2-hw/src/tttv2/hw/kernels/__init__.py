"""Kernels: plain functions per operation, chosen per device through the registry."""

from tttv2.core.moved_modules import alias_moved_modules
from tttv2.hw.kernels.decode_layers import (
    DecodeLayer,
    DecodeLayerShape,
    DecodeLayersKernel,
    DecodeLayersProgram,
    DecodeLayersUnsupported,
    DecodeLayerWeights,
    DecodeMoE,
    DecodeRouting,
    RotaryRows,
    takes_moe_layers,
)
from tttv2.hw.kernels.int8_linear import cpu_int8_linear, int8_decode_unavailable, int8_linear
from tttv2.hw.kernels.linear import cpu_linear, linear
from tttv2.hw.kernels.paged_decode_attention import paged_decode_attention
from tttv2.hw.kernels.prefill_attention import prefill_attention
from tttv2.hw.kernels.registry import (
    ENTRY_POINT_GROUP,
    KERNEL_OPS,
    backend_preference,
    define_kernel_op,
    get_kernel,
    kernel_backends,
    register_kernel,
    unregister_backend,
)
from tttv2.hw.kernels.rms_norm import rms_norm
from tttv2.hw.kernels.rotary import apply_rotary
from tttv2.hw.kernels.torch_backend import register_torch_backends

register_torch_backends()

# native kernels and their Python bindings moved under kernels/native/
alias_moved_modules(
    {
        "tttv2.hw.kernels.native_decode_layer": "tttv2.hw.kernels.native.decode_layer",
        "tttv2.hw.kernels.native_decode_stack": "tttv2.hw.kernels.native.decode_stack",
        "tttv2.hw.kernels.native_paged_decode_attention": "tttv2.hw.kernels.native.paged_decode_attention",
        "tttv2.hw.kernels.native_rms_norm": "tttv2.hw.kernels.native.rms_norm",
        "tttv2.hw.kernels.skinny_linear": "tttv2.hw.kernels.native.skinny_linear",
    }
)

from tttv2.hw.kernels import compiled_ops  # noqa: E402,F401  registers the tttv2_hw:: ops

__all__ = [
    "ENTRY_POINT_GROUP",
    "DecodeLayer",
    "DecodeLayerShape",
    "DecodeLayerWeights",
    "DecodeLayersKernel",
    "DecodeLayersProgram",
    "DecodeLayersUnsupported",
    "DecodeMoE",
    "DecodeRouting",
    "RotaryRows",
    "KERNEL_OPS",
    "apply_rotary",
    "cpu_int8_linear",
    "cpu_linear",
    "backend_preference",
    "define_kernel_op",
    "get_kernel",
    "kernel_backends",
    "int8_decode_unavailable",
    "int8_linear",
    "linear",
    "paged_decode_attention",
    "prefill_attention",
    "register_kernel",
    "register_torch_backends",
    "rms_norm",
    "takes_moe_layers",
    "unregister_backend",
]
