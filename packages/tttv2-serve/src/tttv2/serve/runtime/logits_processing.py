"""Pure functions on a batch of logits rows ``[N, vocab]`` with one parameter per row.

Each works row by row (no row sees another), so a request's distribution does not depend
on what shares its batch. Filters set removed tokens to ``-inf``; the next step's softmax
renormalises over what is left.
"""

from __future__ import annotations

import torch


def apply_repetition_penalty(
    logits: torch.Tensor, seen: torch.Tensor, penalty: torch.Tensor
) -> torch.Tensor:
    """CTRL repetition penalty on tokens marked in ``seen [N, V]``: a positive logit is
    divided by ``penalty [N]``, a negative one multiplied by it."""
    p = penalty[:, None]
    penalised = torch.where(logits > 0, logits / p, logits * p)
    return torch.where(seen, penalised, logits)


def apply_count_penalties(
    logits: torch.Tensor, counts: torch.Tensor, presence: torch.Tensor, frequency: torch.Tensor
) -> torch.Tensor:
    """OpenAI-style penalties: ``logit - frequency * count - presence * (count > 0)`` where
    ``counts [N, V]`` counts each token's occurrences in the output so far."""
    return logits - frequency[:, None] * counts - presence[:, None] * (counts > 0).to(logits.dtype)


def apply_temperature(logits: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """``logits / temperature [N]`` (temperature > 0)."""
    return logits / temperature[:, None]


def top_k_filter(logits: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Keep tokens whose logit is at least the ``k``-th largest of their row (``k [N]``;
    0 keeps everything). Ties with the k-th are kept."""
    vocab = logits.shape[-1]
    k = torch.where(k <= 0, vocab, k).clamp(max=vocab)
    kth = logits.sort(dim=-1, descending=True).values.gather(-1, (k - 1)[:, None])
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability mass
    reaches ``p [N]`` (the most likely token is always kept; p >= 1 keeps everything)."""
    sorted_logits, order = logits.sort(dim=-1, descending=True, stable=True)
    sorted_probs = sorted_logits.softmax(dim=-1)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    limit = torch.where(p >= 1.0, torch.inf, p)[:, None]
    drop = torch.zeros_like(sorted_probs, dtype=torch.bool).scatter(-1, order, mass_before >= limit)
    return logits.masked_fill(drop, float("-inf"))


def min_p_filter(logits: torch.Tensor, min_p: torch.Tensor) -> torch.Tensor:
    """Keep tokens with probability at least ``min_p [N]`` times their row's largest."""
    probs = logits.softmax(dim=-1)
    threshold = probs.amax(dim=-1, keepdim=True) * min_p[:, None]
    return logits.masked_fill(probs < threshold, float("-inf"))
