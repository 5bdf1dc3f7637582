"""tttv2.hw: the hardware layer.

* kernels per device: :func:`get_kernel`, :func:`register_kernel` (entry-point group
  ``tttv2.kernels`` for third-party backends);
* what the code runs on: :meth:`DeviceConfig.auto_detect` (or a forced profile);
* how each operation should run there: :func:`get_optimal_params` / the params dataclasses;
* what fits in memory: :func:`plan_memory`.
"""

from importlib.metadata import PackageNotFoundError, version

from tttv2.hw.device import (
    CPUInfo,
    CUDADeviceInfo,
    DeviceConfig,
    MPSInfo,
    TenstorrentInfo,
    profile_names,
)
from tttv2.hw.device_params import default_kv_block_size, default_kv_dtype, device_params
from tttv2.hw.dtypes import dtype_bytes, to_torch_dtype
from tttv2.hw.kernels import (
    KERNEL_OPS,
    define_kernel_op,
    get_kernel,
    kernel_backends,
    register_kernel,
)
from tttv2.hw.memory import MemoryPlan, MemoryPlanError, count_params, plan_memory
from tttv2.hw.optimal import default_device, get_optimal_params
from tttv2.hw.params import (
    OPS,
    AttentionParams,
    FFNParams,
    KVCacheParams,
    LMHeadParams,
    ModelParams,
    MoEParams,
    NormParams,
    OpParams,
    ParamsOverrideError,
    RopeParams,
)

try:
    __version__ = version("tttv2-hw")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "KERNEL_OPS",
    "default_kv_block_size",
    "default_kv_dtype",
    "device_params",
    "OPS",
    "AttentionParams",
    "CPUInfo",
    "CUDADeviceInfo",
    "DeviceConfig",
    "FFNParams",
    "KVCacheParams",
    "LMHeadParams",
    "MPSInfo",
    "MemoryPlan",
    "MemoryPlanError",
    "ModelParams",
    "MoEParams",
    "NormParams",
    "OpParams",
    "ParamsOverrideError",
    "RopeParams",
    "TenstorrentInfo",
    "__version__",
    "count_params",
    "default_device",
    "define_kernel_op",
    "dtype_bytes",
    "get_kernel",
    "get_optimal_params",
    "kernel_backends",
    "plan_memory",
    "profile_names",
    "register_kernel",
    "to_torch_dtype",
]
