"""Running a loaded model the way the runtime does: one prefill over a paged cache (logits
at every position, every decoder layer's output) and generation through the engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tttv2.core.kv_blocks import KVBlockManager
from tttv2.core.modes import ExecutionMode
from tttv2.serve.runtime import LLMEngine, SamplingParams, StopConditions

BLOCK_SIZE = 16


@torch.inference_mode()
def prefill(model: Any, ids: Sequence[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Float32 logits ``[T, vocab]`` and every decoder layer's output ``[T, hidden]``
    (``model.layers``, as :class:`tttv2.blocks.TransformerStack` has them)."""
    n = len(ids)
    blocks = -(-n // BLOCK_SIZE)
    manager = KVBlockManager(blocks, BLOCK_SIZE, max_seq_len=blocks * BLOCK_SIZE)
    meta = manager.prepare([0], [n], ExecutionMode.PREFILL, logits="all")
    outputs: list[torch.Tensor] = []
    hooks = [
        layer.register_forward_hook(lambda m, a, out: outputs.append(out.float()))
        for layer in model.layers
    ]
    try:
        logits = model(torch.tensor(list(ids)), meta, model.new_cache(blocks, BLOCK_SIZE))
    finally:
        for h in hooks:
            h.remove()
    return logits.float(), outputs


def engine_for(loaded: Any, max_tokens: int, detokenize: Any = None) -> LLMEngine:
    """An engine for ``loaded`` (a ``LoadedModel``) with room for ``max_tokens`` twice."""
    return LLMEngine(
        loaded.model,
        num_blocks=-(-max_tokens // BLOCK_SIZE) * 2,
        block_size=BLOCK_SIZE,
        max_seq_len=loaded.max_context,
        detokenize=detokenize,
    )


def generate(
    loaded: Any,
    ids: Sequence[int],
    steps: int,
    sampling: SamplingParams | None = None,
    stop: StopConditions | None = None,
) -> Any:
    """The engine's output for one prompt (no EOS stop unless ``stop`` says so)."""
    engine = engine_for(loaded, len(ids) + steps)
    stop = stop or StopConditions(max_new_tokens=steps)
    return engine.generate([list(ids)], sampling or SamplingParams(), stop)[0]


def prompt(vocab_size: int, n: int = 24, seed: int = 0) -> list[int]:
    """``n`` seeded random token ids in ``[2, vocab_size)``."""
    return torch.randint(
        2, vocab_size, (n,), generator=torch.Generator().manual_seed(seed)
    ).tolist()
