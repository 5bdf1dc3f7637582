"""Block size and dtype of a KV cache when the caller leaves them open: asked of tttv2-hw."""

from __future__ import annotations

from typing import Any

import torch

#: Used when tttv2-hw has no tuned value for the device.
FALLBACK_BLOCK_SIZE = 16


def kv_cache_params(device: torch.device | str | None, mode: str = "decode") -> dict[str, Any]:
    """tttv2-hw's tuned parameters for ``("kv_cache", mode)`` on ``device`` as a dict
    (empty when this tttv2-hw has no parameter tables)."""
    try:
        from tttv2.hw import get_optimal_params
    except ImportError:
        return {}
    params = get_optimal_params("kv_cache", mode, device=device)
    return dict(params) if params else {}


def default_block_size(device: torch.device | str | None) -> int:
    return int(kv_cache_params(device).get("block_size", FALLBACK_BLOCK_SIZE))


def default_dtype(device: torch.device | str | None) -> torch.dtype:
    dtype = kv_cache_params(device).get("dtype")
    if dtype is None:
        return torch.get_default_dtype()
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype
