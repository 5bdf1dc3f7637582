"""SamplingParams.logprobs: each TokenEvent carries its token's log-probability under the
model (log-softmax of the raw logits, computed here independently with dense attention)
and the k most likely tokens; requests without it carry none and share the batch."""

from __future__ import annotations

import math

import pytest
import torch
from reference_causal_lm import ReferenceCausalLM

from tttv2.serve.runtime import (
    InvalidParameterError,
    LLMEngine,
    Request,
    SamplingParams,
    StopConditions,
)

MODEL = ReferenceCausalLM(
    vocab_size=64, hidden=32, num_heads=2, num_layers=2, max_seq_len=64, seed=5
)


def engine() -> LLMEngine:
    return LLMEngine(
        MODEL, num_blocks=32, block_size=4, max_num_batched_tokens=32, dtype=torch.float32
    )


@pytest.mark.parametrize("temperature", [0.0, 1.3])
def test_logprobs_match_the_dense_reference(temperature: float) -> None:
    e = engine()
    prompt = [3, 9, 27, 14, 5]
    with_lp = Request(
        prompt,
        SamplingParams(temperature=temperature, seed=11, logprobs=4, presence_penalty=0.5),
        StopConditions(max_new_tokens=6),
        request_id="lp",
    )
    plain = Request(
        [7, 7, 1], SamplingParams(), StopConditions(max_new_tokens=6), request_id="plain"
    )
    events = {"lp": [], "plain": []}
    e.add_request(with_lp, callback=lambda ev: events[ev.request_id].append(ev))
    e.add_request(plain, callback=lambda ev: events[ev.request_id].append(ev))
    e.run_until_done()
    assert all(ev.logprob is None and ev.top_logprobs == () for ev in events["plain"])
    tokens = list(prompt)
    for ev in events["lp"]:
        with torch.no_grad():
            expected = torch.log_softmax(MODEL.dense_logits(tokens)[-1].double(), dim=-1)
        assert math.isclose(ev.logprob, float(expected[ev.token_id]), abs_tol=1e-4)
        top_ids = expected.topk(4).indices.tolist()
        assert [t for t, _ in ev.top_logprobs] == top_ids
        assert all(math.isclose(lp, float(expected[t]), abs_tol=1e-4) for t, lp in ev.top_logprobs)
        tokens.append(ev.token_id)


def test_logprobs_zero_gives_only_the_chosen_token() -> None:
    out = list(
        engine().stream([1, 2, 3], SamplingParams(logprobs=0), StopConditions(max_new_tokens=3))
    )
    assert all(ev.logprob is not None and ev.logprob <= 0 and ev.top_logprobs == () for ev in out)


@pytest.mark.parametrize("value", [-1, 21, 2.0, True, "3"])
def test_bad_logprobs_name_the_field(value) -> None:
    with pytest.raises(InvalidParameterError, match=r"SamplingParams\.logprobs=.*\[0, 20\]"):
        SamplingParams(logprobs=value)
