"""What tttv2-hw tuned for a torch device: an op's parameters, the KV cache's block size
and dtype. Blocks ask here instead of building a :class:`~tttv2.hw.DeviceConfig`."""

from __future__ import annotations

import torch

from tttv2.core.modes import ExecutionMode
from tttv2.core.specs import ModuleSpec
from tttv2.hw.optimal import default_device, get_optimal_params
from tttv2.hw.params.types import OpParams

#: KV cache block size where tttv2-hw has no parameters for the device.
FALLBACK_KV_BLOCK_SIZE = 16


def device_params(
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


def default_kv_block_size(device: torch.device | str | None) -> int:
    """The KV cache block size tttv2-hw picks for ``device`` (16 where it has none)."""
    params = device_params("kv_cache", ExecutionMode.DECODE, device)
    return params.kv_block_size if params is not None else FALLBACK_KV_BLOCK_SIZE  # type: ignore[attr-defined]


def default_kv_dtype(device: torch.device | str | None) -> torch.dtype:
    """The KV cache dtype tttv2-hw picks for ``device`` (torch's default dtype where it has none)."""
    params = device_params("kv_cache", ExecutionMode.DECODE, device)
    return params.torch_dtype("kv_cache_dtype") if params is not None else torch.get_default_dtype()
