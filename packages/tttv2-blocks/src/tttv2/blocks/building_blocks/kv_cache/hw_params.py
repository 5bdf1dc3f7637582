"""What tttv2-hw tuned for the device: cache block size and dtype, attention chunk size."""

from __future__ import annotations

import torch

from tttv2.core import ExecutionMode
from tttv2.core.specs import ModuleSpec
from tttv2.hw import OpParams, default_device, get_optimal_params


def hw_params(
    op: str,
    mode: ExecutionMode | str,
    device: torch.device | str | None,
    spec: ModuleSpec | None = None,
) -> OpParams | None:
    """tttv2-hw's parameters for ``op`` in ``mode``, or ``None`` when ``device`` is not the
    kind of device this process was detected to run on (they were tuned for another)."""
    config = default_device()
    wanted = torch.device(device).type if device is not None else "cpu"
    if torch.device(config.torch_device).type != wanted:
        return None
    return get_optimal_params(op, mode, spec)


def default_block_size(device: torch.device | str | None) -> int:
    params = hw_params("kv_cache", ExecutionMode.DECODE, device)
    return params.kv_block_size if params is not None else 16  # type: ignore[attr-defined]


def default_dtype(device: torch.device | str | None) -> torch.dtype:
    params = hw_params("kv_cache", ExecutionMode.DECODE, device)
    return params.torch_dtype("kv_cache_dtype") if params is not None else torch.get_default_dtype()
