"""One prefill pass of a CausalLM over a single sequence, returning logits for every
position (``--logits-out``, validation): a fresh paged cache sized for the sequence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tttv2.core.kv_blocks import KVBlockManager
from tttv2.core.modes import ExecutionMode

BLOCK_SIZE = 16


@torch.inference_mode()
def prompt_logits(model: Any, ids: Sequence[int], device: torch.device | str) -> torch.Tensor:
    """``[len(ids), vocab]`` float32 logits: position ``i`` predicts token ``i + 1``."""
    n = len(ids)
    num_blocks = -(-n // BLOCK_SIZE)
    blocks = KVBlockManager(
        num_blocks, BLOCK_SIZE, max_seq_len=num_blocks * BLOCK_SIZE, device=device
    )
    cache = model.new_cache(num_blocks, BLOCK_SIZE)
    meta = blocks.prepare([0], [n], ExecutionMode.PREFILL, logits="all")
    if callable(getattr(model, "set_mode", None)):
        model.set_mode(ExecutionMode.PREFILL)
    logits = model(torch.tensor(list(ids), dtype=torch.long, device=device), meta, cache)
    return logits.float().cpu()
