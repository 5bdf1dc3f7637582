"""Which torch.distributed backend serves a device: NCCL for CUDA, gloo for CPU."""

from __future__ import annotations

import torch

from tttv2.hw.mesh.errors import MeshConfigError

BACKENDS = {"cpu": "gloo", "cuda": "nccl"}


def backend_for(device: torch.device | str) -> str:
    """The collective backend for ``device``'s type (``gloo`` on CPU, ``nccl`` on CUDA)."""
    kind = torch.device(device).type
    if kind not in BACKENDS:
        raise MeshConfigError("device", str(device), f"a device of type {' or '.join(BACKENDS)}")
    return BACKENDS[kind]
