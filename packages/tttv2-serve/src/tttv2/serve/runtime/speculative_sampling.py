"""Accepting or rejecting draft tokens (Leviathan et al. 2023; Chen et al. 2023).

Given the draft's distributions ``q_1..q_k`` and the tokens ``d_1..d_k`` it drew, and the
target's distributions ``p_1..p_{k+1}`` at the same positions: accept ``d_j`` with
probability ``min(1, p_j(d_j) / q_j(d_j))``; at the first rejection draw the replacement
from ``normalise(max(0, p_j - q_j))`` and stop; if all are accepted draw a bonus token
from ``p_{k+1}``. Every emitted token is then distributed exactly as the target would
have sampled it. Greedy requests accept while the draft token is the target's argmax.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tttv2.serve.runtime.sampler import draw


def verify_greedy(target_tokens: Sequence[int], drafts: Sequence[int]) -> tuple[int, int]:
    """(number of drafts accepted, the token that follows them) when the target's choice
    at draft position j is ``target_tokens[j]`` (``len(drafts) + 1`` of them)."""
    n = 0
    while n < len(drafts) and drafts[n] == target_tokens[n]:
        n += 1
    return n, target_tokens[n]


def verify_sampled(
    p: torch.Tensor, q: torch.Tensor, drafts: Sequence[int], generator: torch.Generator | None
) -> tuple[int, int]:
    """Speculative sampling over ``p [k+1, V]`` (target), ``q [k, V]`` (draft) and the
    ``k`` drafts; returns (number accepted, the token that follows them)."""
    if p.shape[0] != len(drafts) + 1 or q.shape[0] != len(drafts):
        raise ValueError(
            f"need p [k+1, V] and q [k, V] for k={len(drafts)} drafts, got {tuple(p.shape)}, {tuple(q.shape)}"
        )
    for j, d in enumerate(drafts):
        r = float(torch.rand((), generator=generator, device=p.device))
        if r * float(q[j, d]) < float(p[j, d]):
            continue
        residual = (p[j] - q[j]).clamp_min(0.0)
        total = float(residual.sum())
        return j, draw(residual / total if total > 0 else p[j], generator)
    return len(drafts), draw(p[-1], generator)
