"""From logits rows to tokens, one row per request (or per draft position).

``sample_rows`` is what the engine calls (a row without a valid distribution is reported,
not sampled, so it fails alone); ``sample`` raises :class:`SamplingError` for such rows;
``probabilities`` and ``draw`` are the two halves, used separately by speculative decoding. Every random draw uses the row's own
``torch.Generator`` when the request has a seed, so a request's samples depend only on
its own logits and seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tttv2.serve.runtime.errors import SamplingError
from tttv2.serve.runtime.logits_processing import (
    apply_count_penalties,
    apply_repetition_penalty,
    apply_temperature,
    min_p_filter,
    top_k_filter,
    top_p_filter,
)
from tttv2.serve.runtime.sampling_params import SamplingParams


@dataclass(frozen=True)
class SamplingRow:
    """What one logits row is sampled with: the request's parameters and generator, and
    the tokens penalties look at (repetition: prompt and output; presence and frequency:
    output only)."""

    params: SamplingParams
    generator: torch.Generator | None = None
    prompt_ids: Sequence[int] = ()
    output_ids: Sequence[int] = ()


def penalised_logits(logits: torch.Tensor, rows: Sequence[SamplingRow]) -> torch.Tensor:
    """``logits`` as float32 with each row's repetition/presence/frequency penalties."""
    logits = logits.float()
    idx = [i for i, r in enumerate(rows) if r.params.has_penalties]
    if not idx:
        return logits
    vocab, dev = logits.shape[-1], logits.device
    counts = torch.zeros(len(idx), vocab, device=dev)
    seen = torch.zeros(len(idx), vocab, dtype=torch.bool, device=dev)
    for j, i in enumerate(idx):
        out = torch.tensor(list(rows[i].output_ids), dtype=torch.long, device=dev)
        prompt = torch.tensor(list(rows[i].prompt_ids), dtype=torch.long, device=dev)
        counts[j] = torch.bincount(out, minlength=vocab)[:vocab].float()
        seen[j, prompt] = True
        seen[j, out] = True

    def param(name: str) -> torch.Tensor:
        return torch.tensor(
            [getattr(rows[i].params, name) for i in idx], dtype=torch.float32, device=dev
        )

    sub = apply_repetition_penalty(logits[idx], seen, param("repetition_penalty"))
    sub = apply_count_penalties(sub, counts, param("presence_penalty"), param("frequency_penalty"))
    logits = logits.clone()
    logits[idx] = sub
    return logits


def filtered_probabilities(logits: torch.Tensor, params: Sequence[SamplingParams]) -> torch.Tensor:
    """Temperature, top-k, top-p, min-p, softmax: the distribution of non-greedy rows."""
    dev = logits.device

    def param(name: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.tensor([getattr(p, name) for p in params], dtype=dtype, device=dev)

    logits = apply_temperature(logits, param("temperature"))
    if any(p.top_k > 0 for p in params):
        logits = top_k_filter(logits, param("top_k", torch.long))
    if any(p.top_p < 1.0 for p in params):
        logits = top_p_filter(logits, param("top_p"))
    if any(p.min_p > 0.0 for p in params):
        logits = min_p_filter(logits, param("min_p"))
    return logits.softmax(dim=-1)


def probabilities(logits: torch.Tensor, rows: Sequence[SamplingRow]) -> torch.Tensor:
    """The distribution each row samples from, ``[N, V]`` float32; a greedy row's is the
    one-hot of its argmax."""
    logits = penalised_logits(logits, rows)
    probs = torch.zeros_like(logits)
    greedy = [i for i, r in enumerate(rows) if r.params.greedy]
    sampled = [i for i, r in enumerate(rows) if not r.params.greedy]
    if greedy:
        probs[greedy] = torch.nn.functional.one_hot(
            logits[greedy].argmax(dim=-1), logits.shape[-1]
        ).float()
    if sampled:
        probs[sampled] = filtered_probabilities(logits[sampled], [rows[i].params for i in sampled])
    return probs


def greedy_tokens(logits: torch.Tensor) -> list[int]:
    """The argmax of each row of ``logits [N, V]`` (first index on ties; NaN wins, as
    ``torch.argmax``). On CPU through NumPy: PyTorch's CPU argmax takes ~80 us for a
    float32 row of 49k and ~230 us in bfloat16, NumPy's ~5 us, on the 2-core machines
    here, where a small model's whole decode step is ~15 ms."""
    return checked_greedy(logits)[0]


def checked_greedy(logits: torch.Tensor) -> tuple[list[int], list[bool]]:
    """``greedy_tokens`` and, per row, whether the chosen logit is finite (it is not when
    the row has a NaN, a +inf, or nothing but -inf)."""
    if logits.device.type != "cpu":
        tokens = logits.argmax(dim=-1)
        picked = logits.gather(-1, tokens[:, None])[:, 0]
        return tokens.tolist(), torch.isfinite(picked).tolist()
    rows = logits.detach().float().numpy()
    tokens = rows.argmax(axis=-1)
    picked = rows[np.arange(rows.shape[0]), tokens]
    return tokens.tolist(), np.isfinite(picked).tolist()


def draw(probs: torch.Tensor, generator: torch.Generator | None) -> int:
    """One token from the distribution ``probs [V]``."""
    return int(torch.multinomial(probs, 1, generator=generator))


def _failure(logits_row: torch.Tensor, params: SamplingParams) -> str:
    if torch.isnan(logits_row).any():
        return "the logits contain NaN"
    if torch.isposinf(logits_row).any():
        return "the logits contain +inf"
    if torch.isneginf(logits_row).all():
        return "every logit is -inf"
    return (
        f"temperature={params.temperature!r} is too small: logits / temperature overflow float32 "
        "(use temperature=0 for greedy)"
    )


def sample_rows(
    logits: torch.Tensor, rows: Sequence[SamplingRow]
) -> tuple[list[int | None], dict[int, str]]:
    """One token per logits row, and the rows that have no valid distribution (``None``
    in the tokens, a message in the dict). A failed row draws nothing from its generator;
    every other row is sampled exactly as without it (rows never see each other)."""
    if logits.dim() != 2 or logits.shape[0] != len(rows):
        raise ValueError(
            f"sample(): expected logits [{len(rows)}, vocab], got {tuple(logits.shape)}"
        )
    out: list[int | None] = [None] * len(rows)
    failures: dict[int, str] = {}
    if all(r.params.greedy and not r.params.has_penalties for r in rows):
        tokens, finite = checked_greedy(logits)
        for i, (t, ok) in enumerate(zip(tokens, finite, strict=True)):
            if ok:
                out[i] = t
            else:
                failures[i] = _failure(logits[i].float(), rows[i].params)
        return out, failures
    raw = logits
    logits = penalised_logits(logits, rows)
    greedy = [i for i, r in enumerate(rows) if r.params.greedy]
    sampled = [i for i, r in enumerate(rows) if not r.params.greedy]
    if greedy:
        tokens, finite = checked_greedy(logits[greedy])
        for i, t, ok in zip(greedy, tokens, finite, strict=True):
            if ok:
                out[i] = t
            else:
                failures[i] = _failure(raw[i].float(), rows[i].params)
    if sampled:
        probs = filtered_probabilities(logits[sampled], [rows[i].params for i in sampled])
        valid = (torch.isfinite(probs).all(dim=-1) & (probs.sum(dim=-1) > 0)).tolist()
        for j, i in enumerate(sampled):
            if valid[j]:
                out[i] = draw(probs[j], rows[i].generator)
            else:
                failures[i] = _failure(raw[i].float(), rows[i].params)
    return out, failures


def sample(logits: torch.Tensor, rows: Sequence[SamplingRow]) -> list[int]:
    """One token per logits row; :class:`SamplingError` when a row has no valid
    distribution (see :func:`sample_rows`)."""
    tokens, failures = sample_rows(logits, rows)
    if failures:
        raise SamplingError(failures, tokens)
    return [t for t in tokens if t is not None]
