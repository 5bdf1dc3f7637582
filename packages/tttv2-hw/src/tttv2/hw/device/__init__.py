"""Device detection and named device profiles."""

from tttv2.hw.device.config import DeviceConfig
from tttv2.hw.device.cpu import CPUInfo, detect_cpu
from tttv2.hw.device.cuda import CUDA_PROFILES, CUDADeviceInfo, detect_cuda
from tttv2.hw.device.mps import MPSInfo, detect_mps
from tttv2.hw.device.profiles import profile_names
from tttv2.hw.device.tenstorrent import (
    TT_PROFILES,
    TenstorrentArch,
    TenstorrentInfo,
    detect_tenstorrent,
)

__all__ = [
    "CPUInfo",
    "CUDADeviceInfo",
    "CUDA_PROFILES",
    "DeviceConfig",
    "MPSInfo",
    "TT_PROFILES",
    "TenstorrentArch",
    "TenstorrentInfo",
    "detect_cpu",
    "detect_cuda",
    "detect_mps",
    "detect_tenstorrent",
    "profile_names",
]
