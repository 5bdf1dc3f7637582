"""tttv2.hw: the hardware layer -- kernels per device, device detection, tuned parameters
per operation and execution mode, and memory planning."""

from importlib.metadata import PackageNotFoundError, version

from tttv2.hw.kernels import (
    KERNEL_OPS,
    define_kernel_op,
    get_kernel,
    kernel_backends,
    register_kernel,
)

try:
    __version__ = version("tttv2-hw")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "KERNEL_OPS",
    "__version__",
    "define_kernel_op",
    "get_kernel",
    "kernel_backends",
    "register_kernel",
]
