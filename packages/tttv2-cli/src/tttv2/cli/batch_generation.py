"""``tttv2 generate``'s streaming and several-prompt modes: text printed as tokens arrive,
and a JSON-lines file of prompts run together through the engine's continuous batch."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tttv2.cli.errors import UsageError
from tttv2.cli.kv_pool import KVPool
from tttv2.core.model_plugins import LoadedModel
from tttv2.serve.runtime import LLMEngine, Request, RequestOutput, SamplingParams, StopConditions


@dataclass(frozen=True)
class PromptLine:
    """One line of a prompts file: ``index`` (0-based line among the prompts), the prompt's
    token ids, its own ``max_new_tokens`` and the caller's ``id`` (None when not given)."""

    index: int
    prompt_ids: list[int]
    max_new_tokens: int
    id: Any = None


def read_prompts_file(
    path: Path, loaded: LoadedModel, default_max_new_tokens: int
) -> list[PromptLine]:
    """Each non-blank line is a JSON string (the prompt text) or an object with ``prompt``
    (text) or ``prompt_ids`` (token ids), and optionally ``max_new_tokens`` and ``id``."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise UsageError(f"--prompts-file {path}: cannot read it: {exc.strerror or exc}") from None
    prompts: list[PromptLine] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"--prompts-file {path}, line {number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{where}: not JSON ({exc.msg})") from None
        if isinstance(item, str):
            item = {"prompt": item}
        if not isinstance(item, dict) or ("prompt" in item) == ("prompt_ids" in item):
            raise UsageError(
                f"{where}: expected a string, or an object with exactly one of 'prompt' (text) or 'prompt_ids'"
            )
        ids = _line_ids(item, loaded, where)
        max_new = item.get("max_new_tokens", default_max_new_tokens)
        if not isinstance(max_new, int) or isinstance(max_new, bool) or max_new < 1:
            raise UsageError(
                f"{where}: max_new_tokens={max_new!r} is invalid: expected an integer >= 1"
            )
        prompts.append(PromptLine(len(prompts), ids, max_new, item.get("id")))
    if not prompts:
        raise UsageError(f"--prompts-file {path}: no prompts (one JSON string or object per line)")
    return prompts


def _line_ids(item: dict[str, Any], loaded: LoadedModel, where: str) -> list[int]:
    if "prompt" in item:
        text = item["prompt"]
        if not isinstance(text, str) or not text:
            raise UsageError(f"{where}: 'prompt' must be a non-empty string")
        if loaded.tokenizer is None:
            raise UsageError(f"{where}: the checkpoint has no tokenizer.json; give 'prompt_ids'")
        ids = list(loaded.tokenizer.encode(text).ids)
    else:
        ids = item["prompt_ids"]
        if (
            not isinstance(ids, list)
            or not ids
            or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in ids)
        ):
            raise UsageError(f"{where}: 'prompt_ids' must be a non-empty list of token ids >= 0")
    vocab = loaded.spec.vocab_size
    bad = [t for t in ids if t >= vocab]
    if bad:
        raise UsageError(f"{where}: token id {bad[0]} is outside the vocabulary (size {vocab})")
    if len(ids) >= loaded.max_context:
        raise UsageError(
            f"{where}: the prompt has {len(ids)} tokens but the model's context is {loaded.max_context} tokens"
        )
    return ids


def make_engine(
    loaded: LoadedModel,
    pool: KVPool,
    device: torch.device,
    *,
    max_num_seqs: int,
    longest_prompt: int,
) -> LLMEngine:
    tokenizer = loaded.tokenizer
    return LLMEngine(
        loaded.model,
        num_blocks=pool.num_blocks,
        block_size=pool.block_size,
        max_seq_len=loaded.max_context,
        max_num_batched_tokens=max(512, longest_prompt, pool.block_size),
        max_num_seqs=max_num_seqs,
        detokenize=(lambda ids: tokenizer.decode(ids, skip_special_tokens=True))
        if tokenizer
        else None,
        device=device,
        vocab_size=loaded.spec.vocab_size,
    )


def stream_one(
    loaded: LoadedModel,
    ids: Sequence[int],
    sampling: SamplingParams,
    max_new_tokens: int,
    *,
    device: torch.device,
    pool: KVPool,
    write: Callable[[str], None],
) -> RequestOutput:
    """Generate for one prompt, passing each token's text to ``write`` as it arrives (the
    token ids, comma-separated, when the checkpoint has no tokenizer)."""
    engine = make_engine(loaded, pool, device, max_num_seqs=1, longest_prompt=len(ids))
    stop = StopConditions(max_new_tokens=max_new_tokens, eos_token_ids=tuple(loaded.eos_token_ids))
    output = None
    for event in engine.stream(list(ids), sampling, stop):
        if engine.detokenize is not None:
            write(event.text)
        else:
            write(("," if event.index else "") + str(event.token_id))
        if event.finished:
            output = event.output
    assert output is not None
    return output


def generate_many(
    loaded: LoadedModel,
    prompts: Sequence[PromptLine],
    sampling: SamplingParams,
    *,
    device: torch.device,
    pool: KVPool,
    max_num_seqs: int,
    on_result: Callable[[PromptLine, RequestOutput], None],
) -> None:
    """Run every prompt through one continuously batched engine; ``on_result`` is called in
    the prompts' order, each as soon as it and every earlier prompt have finished. A seeded
    ``sampling`` gives prompt i the seed ``seed + i``."""
    engine = make_engine(
        loaded,
        pool,
        device,
        max_num_seqs=max_num_seqs,
        longest_prompt=max(len(p.prompt_ids) for p in prompts),
    )
    eos = tuple(loaded.eos_token_ids)
    for p in prompts:
        params = sampling
        if sampling.seed is not None:
            params = dataclasses.replace(sampling, seed=(sampling.seed + p.index) % 2**63)
        engine.add_request(
            Request(
                tuple(p.prompt_ids),
                params,
                StopConditions(max_new_tokens=p.max_new_tokens, eos_token_ids=eos),
                request_id=p.index,
            )
        )
    done: dict[Hashable, RequestOutput] = {}
    next_index = 0
    with torch.inference_mode():  # held across the steps, not entered by each
        while next_index < len(prompts):
            for event in engine.step():
                if event.finished:
                    done[event.request_id] = engine.pop_output(event.request_id)
            while next_index in done:
                on_result(prompts[next_index], done.pop(next_index))
                next_index += 1
