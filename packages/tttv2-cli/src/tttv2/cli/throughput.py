"""Timing prefill and decode of a batch, for our model (through tttv2.serve.runtime, the
path ``tttv2 generate`` takes) and for Hugging Face transformers on the same checkpoint.

Both run the same work: ``batch`` prompts of ``prompt_len`` random token ids (seeded),
prefilled in one pass, then ``gen_len - 1`` greedy decode steps with a KV cache (the first
generated token comes from the prefill). A short warm-up run precedes each measurement; its
time is reported as ``warmup_s``, apart from the rates (as is loading, ``load_s``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch

from tttv2.cli.kv_pool import KVPool, loaded_kv_pool
from tttv2.cli.measure import PeakMemory
from tttv2.core.model_plugins import LoadedModel
from tttv2.serve.runtime import (
    LLMEngine,
    RequestOutput,
    SamplingParams,
    StopConditions,
    greedy_tokens,
)


@dataclass
class Throughput:
    prefill_tokens_per_s: float
    ttft_s: float
    decode_tokens_per_s: float | None  # all sequences together
    peak_memory_bytes: int | None  # weights + the most the run added (KV cache, activations)
    warmup_s: float | None = None  # the first (warm-up) run: one-time costs of the first call
    load_s: float | None = (
        None  # reading the checkpoint and preparing the weights (set by the caller)
    )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bench_prompts(batch: int, prompt_len: int, vocab_size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab_size, (batch, prompt_len), generator=g)


def bench_ours(
    loaded: LoadedModel,
    prompts: torch.Tensor,
    gen_len: int,
    device: torch.device,
    *,
    full_warmup: bool = False,
    pool: KVPool | None = None,
) -> Throughput:
    """``full_warmup``: the untimed first run is the measured run itself (same prompts and
    lengths), so a compiled step has met every shape the timed run meets (a block table one
    block wide is a shape of its own to torch.compile); otherwise a short run. ``pool``: the
    KV cache of both runs (default: what the measured run needs, planned with tttv2-hw)."""
    batch, prompt_len = prompts.shape
    if pool is None:
        pool = loaded_kv_pool(loaded, device, seq_len=prompt_len + gen_len, num_seqs=batch)
    start = time.perf_counter()
    if full_warmup:
        run_ours(loaded, prompts, gen_len, device, pool)
    else:
        run_ours(loaded, prompts[:, : min(prompt_len, 8)], 2, device, pool)
    warmup = time.perf_counter() - start
    with PeakMemory(device, parameter_bytes(loaded.model)) as mem:
        engine, outputs = run_ours(loaded, prompts, gen_len, device, pool)
    stats = engine.stats
    # every output here has produced tokens, so each has its time to first token
    ttft = statistics.mean(cast(float, o.timings.time_to_first_token) for o in outputs)
    decode = stats.decode_tokens_per_s if stats.decode_tokens else None
    return Throughput(stats.prefill_tokens_per_s, ttft, decode, mem.peak_bytes, warmup)


def run_ours(
    loaded: LoadedModel,
    prompts: torch.Tensor,
    gen_len: int,
    device: torch.device,
    pool: KVPool | None = None,
) -> tuple[LLMEngine, list[RequestOutput]]:
    """One greedy generation run of ``prompts [batch, prompt_len]`` for ``gen_len`` tokens
    through ``LLMEngine`` (the engine and its outputs, with their timings); ``pool``
    defaults to what the run needs, planned with tttv2-hw."""
    batch, prompt_len = prompts.shape
    engine = bench_engine(loaded, batch, prompt_len, gen_len, device, pool)
    stop = StopConditions(max_new_tokens=gen_len)  # no EOS: every run does the same work
    outputs = engine.generate([row.tolist() for row in prompts], SamplingParams(), stop)
    return engine, outputs


def bench_engine(
    loaded: LoadedModel,
    batch: int,
    prompt_len: int,
    gen_len: int,
    device: torch.device,
    pool: KVPool | None = None,
) -> LLMEngine:
    """The ``LLMEngine`` that :func:`run_ours` generates with: ``batch`` sequences of
    ``prompt_len`` prompt tokens prefilled in one step, room for ``gen_len`` more each;
    ``pool`` (the KV cache) defaults to what that needs, planned with tttv2-hw."""
    if pool is None:
        pool = loaded_kv_pool(loaded, device, seq_len=prompt_len + gen_len, num_seqs=batch)
    return LLMEngine(
        loaded.model,
        num_blocks=pool.num_blocks,
        block_size=pool.block_size,
        max_seq_len=loaded.max_context,
        max_num_batched_tokens=batch * prompt_len,
        max_num_seqs=batch,
        device=device,
        vocab_size=loaded.spec.vocab_size,
    )


def load_hf(checkpoint: Path, dtype: torch.dtype, device: torch.device) -> Any:
    """transformers' model for the folder (offline, no progress bars, no remote code, from
    exactly the safetensors files our loader reads: tttv2.testing.hf.load_reference_model)."""
    from tttv2.testing.hf import load_reference_model

    return load_reference_model(checkpoint, dtype, device)


def bench_hf(model: Any, prompts: torch.Tensor, gen_len: int, device: torch.device) -> Throughput:
    batch, prompt_len = prompts.shape
    start = time.perf_counter()
    run_hf(model, prompts[:, : min(prompt_len, 8)], 2, device)  # warm-up
    warmup = time.perf_counter() - start
    with PeakMemory(device, parameter_bytes(model)) as mem:
        prefill_s, decode_s = run_hf(model, prompts, gen_len, device)
    decode = batch * (gen_len - 1) / decode_s if gen_len > 1 and decode_s > 0 else None
    return Throughput(batch * prompt_len / prefill_s, prefill_s, decode, mem.peak_bytes, warmup)


@torch.inference_mode()
def run_hf(
    model: Any,
    prompts: torch.Tensor,
    gen_len: int,
    device: torch.device,
    logits_to_keep: int | None = None,
) -> tuple[float, float]:
    """(prefill seconds, seconds of the ``gen_len - 1`` greedy decode steps) of a manual
    loop over transformers' model with its own KV cache (:func:`time_greedy_loop`);
    ``logits_to_keep=1`` computes only the last position's logits (what ``generate`` does)."""
    keep = {} if logits_to_keep is None else {"logits_to_keep": logits_to_keep}
    ids = prompts.to(device)
    past: Any = None

    def forward(**inputs: Any) -> torch.Tensor:
        nonlocal past
        out = model(past_key_values=past, use_cache=True, **inputs, **keep)
        past = out.past_key_values
        return out.logits[:, -1]

    return time_greedy_loop(
        lambda: forward(input_ids=ids), lambda token: forward(input_ids=token), gen_len, device
    )


def time_greedy_loop(
    prefill: Callable[[], torch.Tensor],
    step: Callable[[torch.Tensor], torch.Tensor],
    gen_len: int,
    device: torch.device,
) -> tuple[float, float]:
    """(seconds of ``prefill()`` and its greedy pick, seconds of the ``gen_len - 1`` greedy
    decode steps after it): ``prefill()`` and ``step(tokens [B, 1])`` return the next-token
    logits ``[B, vocab]``; each step is fed the previous logits' greedy picks, chosen as the
    engine chooses them (CPU: NumPy's argmax). The one timing loop of ``tttv2 bench``'s
    transformers baseline and of the benchmarks' bare loops (tools/bench): the caller keeps
    its model's cache and positions, and sets the grad mode."""
    _sync(device)
    t0 = time.perf_counter()
    token = _greedy(prefill())
    _sync(device)
    t1 = time.perf_counter()
    for _ in range(gen_len - 1):
        token = _greedy(step(token))
    _sync(device)
    return t1 - t0, time.perf_counter() - t1


def _greedy(logits: torch.Tensor) -> torch.Tensor:
    """Next tokens ``[B, 1]``, chosen as the engine chooses them (CPU: NumPy's argmax, not
    PyTorch's slower one), so the baseline pays no more for its argmax than TTTv2 does."""
    if logits.device.type != "cpu":
        return logits.argmax(-1, keepdim=True)
    return torch.tensor(greedy_tokens(logits)).view(-1, 1)


def parameter_bytes(model: torch.nn.Module) -> int:
    """Bytes of every distinct parameter and buffer (a tied weight counts once)."""
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
