"""Apple GPUs through the Metal Performance Shaders backend (unified memory)."""

from __future__ import annotations

import platform
from dataclasses import dataclass

import psutil
import torch


@dataclass(frozen=True)
class MPSInfo:
    name: str
    memory_total_bytes: int  # unified memory shared with the CPU
    bf16: bool  # bf16 tensors on MPS need macOS 14 (Sonoma) or later


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def detect_mps() -> MPSInfo | None:
    if not mps_available():
        return None
    mac = platform.mac_ver()[0] or "0"
    return MPSInfo(
        name=f"Apple {platform.machine()} GPU (MPS)",
        memory_total_bytes=psutil.virtual_memory().total,
        bf16=int(mac.split(".")[0]) >= 14,
    )
