"""CUDA GPUs: what detection reads from torch, and a table of common GPUs for forced
profiles (``"cuda:H100"``). Figures are the vendors' published specifications."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

GIB = 1 << 30


@dataclass(frozen=True)
class CUDADeviceInfo:
    index: int
    name: str
    compute_capability: tuple[int, int]
    sm_count: int
    memory_total_bytes: int
    memory_free_bytes: int

    @property
    def bf16(self) -> bool:
        """bf16 tensor-core math: Ampere (sm_80) and later."""
        return self.compute_capability >= (8, 0)

    @property
    def fp8(self) -> bool:
        """fp8 tensor-core math: Ada (sm_89), Hopper (sm_90) and later."""
        return self.compute_capability >= (8, 9)

    @classmethod
    def from_properties(
        cls, index: int, props: Any, free_bytes: int | None = None
    ) -> CUDADeviceInfo:
        """From a ``torch.cuda.get_device_properties`` result (or any object with its fields)."""
        total = int(props.total_memory)
        return cls(
            index=index,
            name=str(props.name),
            compute_capability=(int(props.major), int(props.minor)),
            sm_count=int(props.multi_processor_count),
            memory_total_bytes=total,
            memory_free_bytes=total if free_bytes is None else int(free_bytes),
        )


#: Forced-profile table: short name -> (marketing name, compute capability, SMs, memory GiB).
CUDA_PROFILES: dict[str, tuple[str, tuple[int, int], int, int]] = {
    "B200": ("NVIDIA B200", (10, 0), 148, 180),
    "H200": ("NVIDIA H200", (9, 0), 132, 141),
    "H100": ("NVIDIA H100 80GB HBM3", (9, 0), 132, 80),
    "H100-PCIE": ("NVIDIA H100 PCIe", (9, 0), 114, 80),
    "L40S": ("NVIDIA L40S", (8, 9), 142, 48),
    "L4": ("NVIDIA L4", (8, 9), 58, 24),
    "RTX4090": ("NVIDIA GeForce RTX 4090", (8, 9), 128, 24),
    "A100": ("NVIDIA A100-SXM4-80GB", (8, 0), 108, 80),
    "A100-40GB": ("NVIDIA A100-SXM4-40GB", (8, 0), 108, 40),
    "A10G": ("NVIDIA A10G", (8, 6), 80, 24),
    "RTX3090": ("NVIDIA GeForce RTX 3090", (8, 6), 82, 24),
    "T4": ("Tesla T4", (7, 5), 40, 16),
    "V100": ("Tesla V100-SXM2-32GB", (7, 0), 80, 32),
}


def cuda_profile(short_name: str, index: int = 0) -> CUDADeviceInfo:
    name, cc, sms, gib = CUDA_PROFILES[short_name]
    return CUDADeviceInfo(index, name, cc, sms, gib * GIB, gib * GIB)


def detect_cuda() -> tuple[CUDADeviceInfo, ...]:
    """Every visible CUDA device (empty without CUDA)."""
    if not torch.cuda.is_available():
        return ()
    devices = []
    for i in range(torch.cuda.device_count()):
        try:
            free, _total = torch.cuda.mem_get_info(i)
        except RuntimeError:  # pragma: no cover - device busy or in an exclusive mode
            free = None
        devices.append(CUDADeviceInfo.from_properties(i, torch.cuda.get_device_properties(i), free))
    return tuple(devices)
