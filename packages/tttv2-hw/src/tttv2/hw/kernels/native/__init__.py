"""Kernels in C, compiled on first use (see :mod:`tttv2.hw.kernels.native.build`)."""

from tttv2.hw.kernels.native.build import (
    NativeBuild,
    NativeKernelUnavailable,
    build_native,
    forget_native_functions,
    native_disabled,
    native_function,
    native_lookup,
    native_status,
)
from tttv2.hw.kernels.native.tensors import DTYPE_CODES, native_allowed, records_grad

__all__ = [
    "DTYPE_CODES",
    "NativeBuild",
    "NativeKernelUnavailable",
    "build_native",
    "forget_native_functions",
    "native_allowed",
    "native_disabled",
    "native_function",
    "native_lookup",
    "native_status",
    "records_grad",
]
