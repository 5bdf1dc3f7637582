"""A long prompt does not keep a short request waiting: one prefill takes at most
``long_prefill_token_threshold`` tokens of a step before the others have had their share,
the budget they leave goes back to it, and outputs stay those of each request alone."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_causal_lm import ReferenceCausalLM, greedy_reference
from runtime_helpers import random_prompts

from tttv2.core import ExecutionMode
from tttv2.core.kv_blocks import KVBlockManager
from tttv2.serve.runtime import InvalidParameterError, LLMEngine, Scheduler, StopConditions

MODEL = ReferenceCausalLM(
    seed=41,
    max_seq_len=320,
    modes=(ExecutionMode.PREFILL, ExecutionMode.DECODE, ExecutionMode.CONTINUOUS_BATCH),
)
LONG = random_prompts(1, 64, 295, 295, seed=41)[0]
SHORT = [7, 8, 9]
BUDGET = 16


def engine(**kwargs) -> LLMEngine:
    return LLMEngine(MODEL, num_blocks=96, block_size=4, max_num_batched_tokens=BUDGET, **kwargs)


def steps_until_first_token(e: LLMEngine, rid) -> int:
    steps = 0
    while not e.output(rid).token_ids:
        e.step()
        steps += 1
    return steps


@pytest.mark.parametrize("steps_before_short", [0, 5])
def test_a_short_request_behind_a_long_prompt_gets_its_first_token_at_once(steps_before_short):
    e = engine()
    long_id = e.add_request(LONG, stop=StopConditions(max_new_tokens=4))
    for _ in range(steps_before_short):
        e.step()
    short_id = e.add_request(SHORT, stop=StopConditions(max_new_tokens=6))
    assert steps_until_first_token(e, short_id) <= 2
    assert e.output(long_id).token_ids == []  # the long prompt is still being prefilled
    outs = {o.request_id: o.token_ids for o in e.run_until_done()}
    assert outs[short_id] == greedy_reference(MODEL, SHORT, 6)
    assert outs[long_id] == greedy_reference(MODEL, LONG, 4)
    assert e.num_free_blocks == 96


def test_the_cap_set_to_the_budget_keeps_first_come_first_served():
    e = engine(long_prefill_token_threshold=BUDGET)
    e.add_request(LONG, stop=StopConditions(max_new_tokens=1))
    short_id = e.add_request(SHORT, stop=StopConditions(max_new_tokens=1))
    assert steps_until_first_token(e, short_id) >= len(LONG) // BUDGET


def test_a_prompt_without_competition_still_takes_the_whole_budget():
    e = engine()
    assert e.scheduler.long_prefill_token_threshold == BUDGET // 4  # the default
    MODEL.passes.clear()
    e.generate([LONG], stop=StopConditions(max_new_tokens=1))
    prefill_passes = [sum(q) for _, q, _ in MODEL.passes]
    assert prefill_passes == [BUDGET] * (len(LONG) // BUDGET) + [len(LONG) % BUDGET]


def test_decoding_requests_keep_their_token_every_step_beside_two_long_prompts():
    e = engine()
    decoding = [e.add_request(SHORT, stop=StopConditions(max_new_tokens=30)) for _ in range(3)]
    e.step()
    longs = [
        e.add_request(p, stop=StopConditions(max_new_tokens=1))
        for p in random_prompts(2, 64, 120, 120, seed=4)
    ]
    MODEL.passes.clear()
    for _ in range(6):
        produced = {ev.request_id for ev in e.step()}
        assert set(decoding) <= produced
    fed = [sum(q) for _, q, _ in MODEL.passes]
    assert all(n == BUDGET for n in fed)  # the capped prompts took the rest of the budget
    assert all(e.output(rid).token_ids == [] for rid in longs)
    # both long prompts advanced, not only the older one
    running = {seq.request_id: seq for seq in e.scheduler.running}
    cached = [running[rid].num_computed for rid in longs]
    assert min(cached) >= 6 * (BUDGET // 4)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_a_bad_threshold_is_named(bad):
    with pytest.raises(
        InvalidParameterError, match=r"long_prefill_token_threshold=.*positive integer"
    ):
        Scheduler(KVBlockManager(8, 4, 32), 16, 4, long_prefill_token_threshold=bad)
    with pytest.raises(ValueError, match="long_prefill_token_threshold"):
        engine(long_prefill_token_threshold=bad)


@settings(max_examples=10, deadline=None)
@given(
    budget=st.integers(1, 24),
    threshold=st.integers(1, 30),
    pool_blocks=st.integers(10, 40),
    seed=st.integers(0, 10_000),
    n=st.integers(2, 5),
)
def test_any_threshold_gives_the_reference_tokens_within_the_budget(
    budget, threshold, pool_blocks, seed, n
):
    prompts = random_prompts(n, 64, 1, 30, seed=seed)
    e = LLMEngine(
        MODEL,
        num_blocks=pool_blocks,
        block_size=4,
        max_num_batched_tokens=budget,
        long_prefill_token_threshold=threshold,
    )
    ids = [e.add_request(p, stop=StopConditions(max_new_tokens=4)) for p in prompts]
    MODEL.passes.clear()
    outs = {o.request_id: o.token_ids for o in e.run_until_done()}
    for rid, p in zip(ids, prompts, strict=True):
        assert outs[rid] == greedy_reference(MODEL, p, 4), rid
    assert all(sum(q) <= budget for _, q, _ in MODEL.passes)
    assert e.num_free_blocks == pool_blocks
