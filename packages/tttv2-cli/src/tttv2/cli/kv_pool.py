"""The KV cache of one job: blocks of tttv2-hw's ``kv_cache`` block size, as many as the
job needs, never more than tttv2-hw's memory plan (``tttv2.hw.plan_memory``) allows.

The cache is stored in the model's dtype (``--dtype``), so the plan counts weights and
cache in that dtype. A job that does not fit is bad input: one line, exit status 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from tttv2.cli.errors import UsageError
from tttv2.core.specs import ModelSpec
from tttv2.hw import DeviceConfig, MemoryPlanError, plan_memory


@dataclass(frozen=True)
class KVPool:
    """``num_blocks`` KV-cache blocks of ``block_size`` tokens; ``plan_blocks`` is the most
    the memory plan allows at the job's context length."""

    block_size: int
    num_blocks: int
    plan_blocks: int

    def blocks_for(self, tokens: int) -> int:
        """Blocks that hold one sequence of ``tokens`` tokens."""
        return math.ceil(tokens / self.block_size)


def kv_block_size(config: DeviceConfig) -> int:
    """Tokens per KV-cache block: tttv2-hw's ``kv_cache`` parameter for decode."""
    return int(config.get_optimal_params("kv_cache", "decode").kv_block_size)  # type: ignore[attr-defined]


def model_dtype(model: Any) -> torch.dtype:
    """The dtype of the model's floating-point weights (float32 when it has none)."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def plan_kv_pool(
    spec: ModelSpec,
    config: DeviceConfig,
    dtype: torch.dtype,
    *,
    seq_len: int,
    num_seqs: int = 1,
    job: str = "",
) -> KVPool:
    """Blocks for ``num_seqs`` sequences of ``seq_len`` tokens of a ``spec`` model whose
    weights and cache are in ``dtype``, on ``config``. ``job`` names the options that set
    the sizes, for the error message (e.g. ``"--prompt-len 128 + --gen-len 32"``)."""
    block = kv_block_size(config)
    where = f"{job}: " if job else ""
    try:
        plan = plan_memory(
            spec,
            device=config,
            weight_dtype=dtype,  # type: ignore[arg-type]
            kv_dtype=dtype,  # type: ignore[arg-type]
            block_size=block,
            context_len=seq_len,
        )
    except MemoryPlanError as exc:
        raise UsageError(
            f"{where}a sequence of {seq_len} tokens does not fit in memory: {exc}"
        ) from None
    per_seq = math.ceil(seq_len / block)
    needed = num_seqs * per_seq
    if needed > plan.num_blocks:
        raise UsageError(
            f"{where}{num_seqs} sequences of {seq_len} tokens need {needed} KV-cache blocks of {block} "
            f"tokens but the memory plan for {config.profile} holds {plan.num_blocks} "
            f"(at most {plan.max_batch_at(seq_len)} such sequences at once): {plan.summary()}"
        )
    return KVPool(block_size=block, num_blocks=needed, plan_blocks=plan.num_blocks)


def loaded_kv_pool(
    loaded: Any, device: torch.device, *, seq_len: int, num_seqs: int = 1, job: str = ""
) -> KVPool:
    """:func:`plan_kv_pool` for a loaded model on ``device`` (tttv2-hw's config for it)."""
    from tttv2.cli.hardware import device_config

    return plan_kv_pool(
        loaded.spec,
        device_config(device),
        model_dtype(loaded.model),
        seq_len=seq_len,
        num_seqs=num_seqs,
        job=job,
    )
