"""One prefill pass of a CausalLM over a single sequence, returning logits for every
position (``--logits-out``, validation): a fresh paged cache sized for the sequence, in
blocks of tttv2-hw's size (the command has checked the memory plan for it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tttv2.core.kv_blocks import KVBlockManager
from tttv2.core.modes import ExecutionMode


@torch.inference_mode()
def prompt_logits(
    model: Any, ids: Sequence[int], device: torch.device | str, block_size: int | None = None
) -> torch.Tensor:
    """``[len(ids), vocab]`` float32 logits: position ``i`` predicts token ``i + 1``.
    ``block_size``: tokens per cache block (default: tttv2-hw's ``kv_cache`` parameter for
    the detected device); the cache holds just this sequence."""
    if block_size is None:
        from tttv2.cli.hardware import device_config
        from tttv2.cli.kv_pool import kv_block_size

        block_size = kv_block_size(device_config(torch.device(device)))
    n = len(ids)
    num_blocks = -(-n // block_size)
    blocks = KVBlockManager(
        num_blocks, block_size, max_seq_len=num_blocks * block_size, device=device
    )
    cache = model.new_cache(num_blocks, block_size)
    meta = blocks.prepare([0], [n], ExecutionMode.PREFILL, logits="all")
    if callable(getattr(model, "set_mode", None)):
        model.set_mode(ExecutionMode.PREFILL)
    logits = model(torch.tensor(list(ids), dtype=torch.long, device=device), meta, cache)
    return logits.float().cpu()
