"""Workloads and small tools shared by the runtime tests."""

from __future__ import annotations

import torch

from tttv2.serve.runtime import LLMEngine, StopConditions


def random_prompts(n: int, vocab: int, lo: int, hi: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lens = torch.randint(lo, hi + 1, (n,), generator=g).tolist()
    return [torch.randint(0, vocab, (m,), generator=g).tolist() for m in lens]


def random_limits(n: int, lo: int, hi: int, seed: int) -> list[StopConditions]:
    g = torch.Generator().manual_seed(seed + 1)
    return [
        StopConditions(max_new_tokens=m)
        for m in torch.randint(lo, hi + 1, (n,), generator=g).tolist()
    ]


def run_alone(make_engine, prompt, sampling, stop) -> list[int]:
    """The tokens a request gets in an engine of its own."""
    engine: LLMEngine = make_engine()
    return engine.generate([prompt], sampling, stop)[0].token_ids


def run_staggered(engine: LLMEngine, requests, join_every: int = 2, first: int = 3) -> dict:
    """Add ``first`` requests, then one more every ``join_every`` steps while stepping;
    returns {request_id: token_ids}. Requests join and leave a running batch."""
    pending = list(requests)
    for r in pending[:first]:
        engine.add_request(r)
    pending = pending[first:]
    steps = 0
    while pending or engine.has_unfinished():
        if pending and steps % join_every == 0:
            engine.add_request(pending.pop(0))
        engine.step()
        steps += 1
    return {o.request_id: o.token_ids for o in engine.run_until_done()}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: float = 1e-5) -> None:
    """Elementwise |actual - expected| <= tol (torch.testing.assert_close costs seconds to
    import on first use in torch 2.15)."""
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    diff = (actual - expected).abs().max().item() if actual.numel() else 0.0
    assert diff <= tol, f"max abs difference {diff} > {tol}\nactual={actual}\nexpected={expected}"
