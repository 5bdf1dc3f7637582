"""Log-probabilities of sampled tokens, for requests that ask for them
(``SamplingParams.logprobs``). They describe the model's distribution: log-softmax of the
raw logits row, before penalties, temperature and filters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TokenLogprobs:
    logprob: float  # of the chosen token
    top: tuple[
        tuple[int, float], ...
    ]  # (token id, logprob) of the most likely tokens, most likely first


def token_logprobs(
    logits: torch.Tensor, tokens: Sequence[int], wanted: Sequence[int | None]
) -> list[TokenLogprobs | None]:
    """For each row of ``logits [N, V]``: None where ``wanted[i]`` is None, else the
    log-probability of ``tokens[i]`` and the ``wanted[i]`` most likely tokens'."""
    out: list[TokenLogprobs | None] = [None] * len(tokens)
    rows = [i for i, k in enumerate(wanted) if k is not None]
    if not rows:
        return out
    logp = torch.log_softmax(logits[rows].float(), dim=-1)
    k_max = max(k for k in wanted if k is not None)
    top_vals, top_ids = logp.topk(min(k_max, logp.shape[-1]), dim=-1) if k_max else (None, None)
    chosen = logp.gather(-1, torch.tensor([tokens[i] for i in rows], device=logp.device)[:, None])[
        :, 0
    ].tolist()
    for j, i in enumerate(rows):
        k = wanted[i]
        top: tuple[tuple[int, float], ...] = ()
        if k and top_ids is not None and top_vals is not None:  # k > 0 implies k_max > 0
            top = tuple(zip(top_ids[j, :k].tolist(), top_vals[j, :k].tolist(), strict=True))
        out[i] = TokenLogprobs(chosen[j], top)
    return out
