"""Generating one sequence with tttv2.serve.runtime's engine, with timings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tttv2.cli.kv_pool import KVPool, loaded_kv_pool
from tttv2.core.model_plugins import LoadedModel
from tttv2.serve.runtime import LLMEngine, SamplingParams, StopConditions

if TYPE_CHECKING:
    import torch


@dataclass
class Generation:
    prompt_ids: list[int]
    generated_ids: list[int]
    text: str | None
    finish_reason: str | None
    ttft_s: float | None
    decode_tokens_per_s: float | None


def generate(
    loaded: LoadedModel,
    prompt: Sequence[int],
    sampling: SamplingParams,
    max_new_tokens: int,
    *,
    device: torch.device,
    on_token: Callable[[int], None] | None = None,
    eos_token_ids: Sequence[int] | None = None,
    pool: KVPool | None = None,
) -> Generation:
    """Prefill ``prompt`` and decode up to ``max_new_tokens`` tokens (fewer on EOS or at the
    context limit). ``on_token(n)`` is called with the number generated so far.
    ``eos_token_ids`` defaults to the checkpoint's; ``()`` never stops early. ``pool``: the
    KV cache (default: what this sequence needs, planned with tttv2-hw for ``device``)."""
    tokens_needed = min(len(prompt) + max_new_tokens, loaded.max_context)
    if pool is None:
        pool = loaded_kv_pool(loaded, device, seq_len=tokens_needed)
    tokenizer = loaded.tokenizer
    engine = LLMEngine(
        loaded.model,
        num_blocks=pool.num_blocks,
        block_size=pool.block_size,
        max_seq_len=loaded.max_context,
        max_num_batched_tokens=max(len(prompt), pool.block_size),
        max_num_seqs=1,
        detokenize=(lambda ids: tokenizer.decode(ids, skip_special_tokens=True))
        if tokenizer
        else None,
        device=device,
        vocab_size=loaded.spec.vocab_size,
    )
    stop = StopConditions(
        max_new_tokens=max_new_tokens,
        eos_token_ids=tuple(loaded.eos_token_ids if eos_token_ids is None else eos_token_ids),
    )
    output = None
    for event in engine.stream(list(prompt), sampling, stop):
        if on_token is not None:
            on_token(event.index + 1)
        output = event.output if event.finished else output
    assert output is not None
    times = output.timings.token_times
    decode_rate = (
        (len(times) - 1) / (times[-1] - times[0])
        if len(times) > 1 and times[-1] > times[0]
        else None
    )
    return Generation(
        prompt_ids=list(prompt),
        generated_ids=list(output.token_ids),
        text=output.text,
        finish_reason=output.finish_reason,
        ttft_s=output.timings.time_to_first_token,
        decode_tokens_per_s=decode_rate,
    )
