"""Kernels in C, compiled on first use (see :mod:`tttv2.hw.kernels.native.build`)."""

from tttv2.hw.kernels.native.build import NativeBuild, NativeKernelUnavailable, build_native, native_disabled

__all__ = ["NativeBuild", "NativeKernelUnavailable", "build_native", "native_disabled"]
