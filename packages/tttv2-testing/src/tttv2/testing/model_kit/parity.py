"""Parity with transformers on tiny checkpoints, the bar every model project keeps:

- fp32: every layer and the logits within 1e-4 (max-abs), and 64 greedy tokens through
  the engine (prefill, then paged decode) identical to transformers';
- bf16: every layer's PCC >= 0.99 against transformers in bf16 and in fp32, and top-1
  agreement >= 99% under teacher forcing (on a trained checkpoint, see
  :func:`~tttv2.testing.model_kit.trained_checkpoint`: random weights have near-tied
  logits that bf16 rounding flips even within transformers).

``load`` is the model's plugin ``load(folder, dtype=...) -> LoadedModel``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from tttv2.testing.hf import reference_outputs
from tttv2.testing.metrics import assert_close, assert_pcc, assert_topk_agreement, max_abs_error
from tttv2.testing.model_kit.running import generate, prefill, prompt

GREEDY_STEPS = 64
FP32_ATOL = 1e-4
BF16_PCC = 0.99
BF16_TOP1 = 0.99

Load = Callable[..., Any]


def check_fp32_parity(
    load: Load,
    checkpoint: Any,
    *,
    greedy_steps: int = GREEDY_STEPS,
    prompt_len: int = 24,
    seed: int = 0,
) -> None:
    """Layers and logits within 1e-4 and ``greedy_steps`` identical greedy tokens."""
    loaded = load(checkpoint.path, dtype=torch.float32)
    ids = prompt(checkpoint.vocab_size, n=prompt_len, seed=seed)
    ref = reference_outputs(checkpoint, ids, greedy_steps=greedy_steps)
    logits, layers = prefill(loaded.model, ids)
    assert len(layers) == ref.num_layers, (len(layers), ref.num_layers)
    for i, (ours, theirs) in enumerate(zip(layers, ref.layer_outputs, strict=True)):
        assert_close(ours, theirs, atol=FP32_ATOL, rtol=FP32_ATOL, label=f"layer {i}")
    error = max_abs_error(logits, ref.logits)
    assert error < FP32_ATOL, f"fp32 logits max-abs error {error} >= {FP32_ATOL}"
    greedy = generate(loaded, ids, greedy_steps).token_ids
    assert greedy == ref.greedy_tokens.tolist()
    assert len(set(greedy)) > 4, (
        "the greedy tokens are nearly constant: the test would compare nothing"
    )


def check_fp32_logits(load: Load, checkpoint: Any, *, prompt_len: int = 64, seed: int = 2) -> None:
    """Prefill logits within 1e-4 (e.g. for a prompt past a scaling threshold)."""
    loaded = load(checkpoint.path, dtype=torch.float32)
    ids = prompt(checkpoint.vocab_size, n=prompt_len, seed=seed)
    ref = reference_outputs(checkpoint, ids, greedy_steps=0)
    logits, _ = prefill(loaded.model, ids)
    error = max_abs_error(logits, ref.logits)
    assert error < FP32_ATOL, f"fp32 logits max-abs error {error} >= {FP32_ATOL}"


def check_bf16_parity(load: Load, folder: str | Path, ids: Sequence[int]) -> None:
    """Every layer's PCC >= 0.99 (against transformers in bf16 and in fp32) and
    teacher-forced top-1 agreement >= 99%; use a trained checkpoint."""
    loaded = load(folder, dtype=torch.bfloat16)
    assert {p.dtype for p in loaded.model.parameters()} == {torch.bfloat16}
    ref = reference_outputs(folder, list(ids), greedy_steps=0, dtype=torch.bfloat16)
    logits, layers = prefill(loaded.model, ids)
    assert len(layers) == ref.num_layers, (len(layers), ref.num_layers)
    for i, (ours, theirs) in enumerate(zip(layers, ref.layer_outputs, strict=True)):
        assert_pcc(ours, theirs, BF16_PCC, label=f"bf16 layer {i}")
    assert_topk_agreement(logits, ref.logits, k=1, threshold=BF16_TOP1, label="bf16 teacher-forced")
    ref32 = reference_outputs(folder, list(ids), greedy_steps=0)
    for i, (ours, theirs) in enumerate(zip(layers, ref32.layer_outputs, strict=True)):
        assert_pcc(ours, theirs, BF16_PCC, label=f"bf16 layer {i} vs fp32")


def check_bf16_layers(load: Load, checkpoint: Any, *, prompt_len: int = 96, seed: int = 1) -> None:
    """Random weights in bf16: every layer's and the logits' PCC >= 0.99 (top-1 is
    checked on a trained checkpoint by :func:`check_bf16_parity`)."""
    loaded = load(checkpoint.path, dtype=torch.bfloat16)
    ids = prompt(checkpoint.vocab_size, n=prompt_len, seed=seed)
    ref = reference_outputs(checkpoint, ids, greedy_steps=0, dtype=torch.bfloat16)
    logits, layers = prefill(loaded.model, ids)
    assert len(layers) == ref.num_layers, (len(layers), ref.num_layers)
    for i, (ours, theirs) in enumerate(zip(layers, ref.layer_outputs, strict=True)):
        assert_pcc(ours, theirs, BF16_PCC, label=f"bf16 layer {i}")
    assert_pcc(logits, ref.logits, BF16_PCC, label="bf16 logits")
