"""The fused decode path returns the logits rows a pass asks for: every row in order (it
skips the row selection then), a subset, another order, a repeat, none; the same rows as
the op-by-op path, and an index outside the pass refused as op by op."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from test_fused_decode import PROMPTS, _spec, _stack

from tttv2.blocks import PagedKVCache, TransformerStack
from tttv2.core import ExecutionMode, KVBlockManager

ROWS = len(PROMPTS)


def _prefilled(stack: TransformerStack) -> tuple[PagedKVCache, KVBlockManager, torch.Tensor]:
    """A cache holding PROMPTS, its block manager, and each prompt's greedy next token."""
    cache = stack.new_cache(64, 4)
    blocks = cache.block_manager(128)
    with torch.inference_mode():
        meta = blocks.prepare(list(range(ROWS)), [len(p) for p in PROMPTS], ExecutionMode.PREFILL)
        first = stack(torch.tensor([t for p in PROMPTS for t in p]), meta, cache).argmax(-1)
    return cache, blocks, first


def _decode(stack: TransformerStack, logits: list[int]) -> tuple[torch.Tensor, str | None]:
    """Prefill PROMPTS, then one decode pass asking ``logits`` rows: its logits, and why it
    ran op by op (None: fused)."""
    cache, blocks, first = _prefilled(stack)
    with torch.inference_mode():
        meta = blocks.prepare(list(range(ROWS)), [1] * ROWS, ExecutionMode.DECODE, logits=logits)
        return stack(first, meta, cache).float(), stack.fused_decode_reason


@pytest.mark.parametrize(
    "rows",
    [[0, 1, 2], [2, 0], [1], [0, 2], [2, 1, 0], [1, 1], []],
    ids=["every_row", "reordered_subset", "one", "gap", "reversed", "repeated", "none"],
)
def test_fused_decode_returns_the_rows_asked_for(rows: list[int]) -> None:
    fused_logits, reason = _decode(_stack(_spec(), torch.float32, True), rows)
    eager_logits, off = _decode(_stack(_spec(), torch.float32, False), rows)
    assert reason is None and off == "fuse_decode_layers is off"
    assert fused_logits.shape == (len(rows), eager_logits.shape[-1])
    torch.testing.assert_close(fused_logits, eager_logits, rtol=1e-5, atol=1e-5)
    every, _ = _decode(_stack(_spec(), torch.float32, True), [0, 1, 2])
    for i, row in enumerate(rows):  # row i is sequence `row`'s, not row i of the batch
        torch.testing.assert_close(fused_logits[i], every[row], rtol=0, atol=0)


def test_a_logits_index_outside_the_pass_is_refused_on_the_fused_path() -> None:
    stack = _stack(_spec(), torch.float32, True)
    cache, blocks, first = _prefilled(stack)
    with torch.inference_mode():
        meta = blocks.prepare(list(range(ROWS)), [1] * ROWS, ExecutionMode.DECODE)
        # a hand-made description: one index past the pass's rows
        bad = dataclasses.replace(meta, logits_indices=torch.tensor([0, 1, ROWS]))
        with pytest.raises(IndexError):
            stack(first, bad, cache)
        assert stack.fused_decode_reason is None  # refused on the fused path itself
