"""KV-pool exhaustion: requests queue or are preempted (blocks freed, recomputed later)
and still produce exactly the tokens they produce with a pool large enough for all."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_causal_lm import ReferenceCausalLM, greedy_reference
from runtime_helpers import random_limits, random_prompts

from tttv2.serve.runtime import LLMEngine, Request, SamplingParams, StopConditions

MODEL = ReferenceCausalLM(seed=21, max_seq_len=128)


def test_preemption_and_recompute_give_identical_greedy_outputs():
    prompts = random_prompts(8, 64, 8, 14, seed=3)
    stop = StopConditions(max_new_tokens=16)
    small = LLMEngine(
        MODEL, num_blocks=12, block_size=4, max_num_batched_tokens=32
    )  # 48 token slots
    outs = small.generate(prompts, SamplingParams(), stop)
    assert small.stats.preemptions > 0
    assert sum(o.num_preemptions for o in outs) == small.stats.preemptions
    for p, o in zip(prompts, outs, strict=True):
        assert o.token_ids == greedy_reference(MODEL, p, 16)
    assert small.num_free_blocks == 12


def test_preemption_and_recompute_give_identical_seeded_samples():
    prompts = random_prompts(8, 64, 8, 14, seed=4)
    requests = [
        Request(
            p, SamplingParams(temperature=1.0, top_p=0.9, seed=i), StopConditions(max_new_tokens=16)
        )
        for i, p in enumerate(prompts)
    ]
    big = LLMEngine(MODEL, num_blocks=200, block_size=4).generate(requests)
    small_engine = LLMEngine(MODEL, num_blocks=12, block_size=4, max_num_batched_tokens=32)
    small = small_engine.generate(requests)
    assert small_engine.stats.preemptions > 0
    assert [o.token_ids for o in small] == [o.token_ids for o in big]


def test_sixty_four_queued_requests_on_a_small_pool_all_complete():
    n = 64
    prompts = random_prompts(n, 64, 3, 20, seed=5)
    limits = random_limits(n, 2, 12, seed=5)
    engine = LLMEngine(
        MODEL, num_blocks=16, block_size=4, max_num_batched_tokens=48, max_num_seqs=32
    )
    ids = [engine.add_request(p, SamplingParams(), s) for p, s in zip(prompts, limits, strict=True)]
    outs = {o.request_id: o for o in engine.run_until_done()}
    assert engine.stats.preemptions > 0  # the pool ran out: exhaustion handling ran
    assert sum(o.num_preemptions for o in outs.values()) == engine.stats.preemptions
    assert sorted(outs) == sorted(ids)  # none lost
    for rid, p, s in zip(ids, prompts, limits, strict=True):
        assert outs[rid].finish_reason == "length"
        assert outs[rid].token_ids == greedy_reference(MODEL, p, s.max_new_tokens), rid
    assert engine.num_free_blocks == 16
    assert not engine.has_unfinished()


@settings(max_examples=12, deadline=None)
@given(
    block_size=st.sampled_from([1, 2, 4, 8]),
    pool_tokens=st.integers(24, 96),
    budget=st.integers(1, 24),
    max_num_seqs=st.integers(1, 6),
    seed=st.integers(0, 10_000),
    n=st.integers(1, 8),
)
def test_any_pool_and_budget_gives_the_reference_tokens(
    block_size, pool_tokens, budget, max_num_seqs, seed, n
):
    num_blocks = -(-pool_tokens // block_size)
    limit = num_blocks * block_size
    g = torch.Generator().manual_seed(seed)
    prompts = random_prompts(n, 64, 1, min(16, limit - 1), seed=seed)
    news = torch.randint(1, 10, (n,), generator=g).tolist()
    engine = LLMEngine(
        MODEL,
        num_blocks=num_blocks,
        block_size=block_size,
        max_num_batched_tokens=budget,
        max_num_seqs=max_num_seqs,
    )
    ids = [
        engine.add_request(p, stop=StopConditions(max_new_tokens=m))
        for p, m in zip(prompts, news, strict=True)
    ]
    outs = {o.request_id: o for o in engine.run_until_done()}
    for rid, p, m in zip(ids, prompts, news, strict=True):
        expected = greedy_reference(MODEL, p, min(m, limit - len(p)))
        assert outs[rid].token_ids == expected
        assert outs[rid].finish_reason == (
            "length" if len(p) + m <= limit and m == len(expected) else "context"
        )
    assert engine.num_free_blocks == num_blocks
