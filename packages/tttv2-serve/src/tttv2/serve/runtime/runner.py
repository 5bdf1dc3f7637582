"""ModelRunner: one model, its KV cache and the cache's block bookkeeping.

It turns a list of chunks (a sequence and the tokens it feeds this step) into forward
passes and hands back each chunk's logits rows. Which mode a pass runs in:

- every chunk is one generated token fed back after cached context -> DECODE;
- no chunk is like that (fresh prompts, prompt chunks, recomputation) -> PREFILL (a
  chunk may have cached context: PREFILL is computed from ``context_lens`` like every mode).
  A one-token prompt chunk (the last token of a prompt prefilled in chunks) is PREFILL
  too, so which kernel computes a prompt token does not depend on where the token budget
  happened to split the prompt (the decode and prefill kernels round differently in bf16);
- a mix -> one CONTINUOUS_BATCH pass if the model supports it, else a PREFILL pass and a
  DECODE pass.

Callers may force a mode (speculative verification runs in SPECULATIVE).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tttv2.core.batch import int64_tensor
from tttv2.core.errors import ModeNotSupportedError, TTTv2Error
from tttv2.core.kv_blocks import KVBlockManager
from tttv2.core.modes import ExecutionMode
from tttv2.serve.runtime.inference_mode import inference_mode_unless_on
from tttv2.serve.runtime.interface import call_model, check_causal_lm, declared_modes, switch_mode
from tttv2.serve.runtime.timings import EngineStats


@dataclass(frozen=True)
class Chunk:
    """Sequence ``seq_id`` feeds ``token_ids`` (appended after what it has cached) and
    wants logits for its last ``num_logits`` tokens (0: none). ``generated`` says, for the
    throughput counters, whether the tokens are generated ones fed back (decode) or
    prompt/recomputed ones (prefill); ``None``: decode when it is one token after cached
    context."""

    seq_id: int
    token_ids: Sequence[int]
    num_logits: int = 1
    generated: bool | None = None


def model_device(model: Any, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    params = getattr(model, "parameters", None)
    if callable(params):
        for p in params():
            return p.device
    return torch.device("cpu")


class ModelRunner:
    def __init__(
        self,
        model: Any,
        num_blocks: int,
        block_size: int,
        max_seq_len: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        stats: EngineStats | None = None,
        role: str = "model",
    ) -> None:
        check_causal_lm(model, role)
        self.model = model
        self.role = role
        self.device = model_device(model, device)
        self.blocks = KVBlockManager(num_blocks, block_size, max_seq_len, self.device)
        self.cache = model.new_cache(num_blocks, block_size, dtype=dtype)
        self.modes = declared_modes(model)
        self.stats = stats if stats is not None else EngineStats()
        self.vocab_size: int | None = None
        self._last_mode: ExecutionMode | None = None

    def supports(self, mode: ExecutionMode) -> bool:
        return self.modes is None or mode in self.modes

    def require(self, mode: ExecutionMode, why: str) -> None:
        if not self.supports(mode):
            have = ", ".join(sorted(m.value for m in self.modes or ()))
            raise ModeNotSupportedError(
                f"{self.role} does not support mode {mode.value!r} needed for {why} (supported: {have})"
            )

    # -- cache bookkeeping ------------------------------------------------------------
    def num_cached(self, seq_id: int) -> int:
        return self.blocks.seq_len(seq_id) if self.blocks.has_sequence(seq_id) else 0

    def truncate(self, seq_id: int, new_len: int) -> None:
        self.blocks.truncate(seq_id, new_len)

    def free(self, seq_id: int) -> None:
        self.blocks.free(seq_id)

    # -- passes -----------------------------------------------------------------------
    def plan(self, chunks: Sequence[Chunk]) -> list[tuple[ExecutionMode, list[int]]]:
        """Which passes run ``chunks``: (mode, indices of the chunks in that pass)."""
        decode = [
            i
            for i, c in enumerate(chunks)
            if len(c.token_ids) == 1 and c.generated is not False and self.num_cached(c.seq_id) > 0
        ]
        is_decode = set(decode)
        prefill = [i for i in range(len(chunks)) if i not in is_decode]
        if not prefill:
            return [(ExecutionMode.DECODE, decode)]
        if not decode:
            return [(ExecutionMode.PREFILL, prefill)]
        if self.supports(ExecutionMode.CONTINUOUS_BATCH):
            return [(ExecutionMode.CONTINUOUS_BATCH, list(range(len(chunks))))]
        return [(ExecutionMode.PREFILL, prefill), (ExecutionMode.DECODE, decode)]

    def run(
        self, chunks: Sequence[Chunk], mode: ExecutionMode | None = None
    ) -> list[torch.Tensor | None]:
        """Logits rows ``[num_logits, vocab]`` per chunk (``None`` where none were asked)."""
        if mode is not None:
            return self.forward(chunks, mode)
        out: list[torch.Tensor | None] = [None] * len(chunks)
        for pass_mode, idx in self.plan(chunks):
            for i, logits in zip(
                idx, self.forward([chunks[i] for i in idx], pass_mode), strict=True
            ):
                out[i] = logits
        return out

    def forward(self, chunks: Sequence[Chunk], mode: ExecutionMode) -> list[torch.Tensor | None]:
        """One pass over ``chunks`` in ``mode``. Reserves cache room for the new tokens; if
        the model raises, the reservation is undone."""
        self.require(mode, "this pass")
        seq_ids = [c.seq_id for c in chunks]
        query_lens = [len(c.token_ids) for c in chunks]
        indices: list[int] = []
        start = 0
        for c, q in zip(chunks, query_lens, strict=True):
            if not 0 <= c.num_logits <= q:
                raise ValueError(f"chunk of {q} tokens cannot ask for {c.num_logits} logits rows")
            indices.extend(range(start + q - c.num_logits, start + q))
            start += q
        meta = self.blocks.prepare(seq_ids, query_lens, mode, logits=indices)
        before = meta.context_lens  # what each sequence held before this pass
        input_ids = int64_tensor([t for c in chunks for t in c.token_ids], self.device)
        t0 = time.perf_counter()
        try:
            switch_mode(self.model, mode, self._last_mode)
            self._last_mode = mode
            with inference_mode_unless_on():
                logits = call_model(self.model, input_ids, meta, self.cache)
        except BaseException:
            for s, n in zip(seq_ids, before, strict=True):
                if n == 0:
                    self.blocks.free(s)
                else:
                    self.blocks.truncate(s, n)
            raise
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t0
        if logits.dim() != 2 or logits.shape[0] != len(indices):
            raise TTTv2Error(
                f"{self.role} returned logits of shape {tuple(logits.shape)} for a pass asking "
                f"{len(indices)} rows: expected [len(meta.logits_indices), vocab]"
            )
        self.vocab_size = logits.shape[-1]
        num_decode = sum(
            len(c.token_ids)
            for c, n in zip(chunks, before, strict=True)
            if (c.generated if c.generated is not None else len(c.token_ids) == 1 and n > 0)
        )
        self.stats.record_pass(sum(query_lens) - num_decode, num_decode, seconds)
        if len(chunks) == 1 and chunks[0].num_logits:  # all the rows: no slice (~50 us cold)
            return [logits]
        out: list[torch.Tensor | None] = []
        row = 0
        for c in chunks:
            out.append(logits[row : row + c.num_logits] if c.num_logits else None)
            row += c.num_logits
        return out
