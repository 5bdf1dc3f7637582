"""Preemption keeps the KV it computed: the victim's blocks are copied to a host pool and
back, so it resumes without re-prefilling and its bf16 tokens are those of a run that was
never preempted. Without room in the host pool (or with swapping off) it recomputes."""

import pytest
import torch
from reference_causal_lm import ReferenceCausalLM, greedy_reference
from runtime_helpers import random_prompts
from stack_model import tiny_model_spec, tiny_stack

from tttv2.core.modes import ExecutionMode
from tttv2.serve.runtime import (
    Chunk,
    InvalidParameterError,
    LLMEngine,
    ModelRunner,
    SamplingParams,
    StopConditions,
)
from tttv2.serve.runtime.kv_swap import cache_block_pools

MODEL = ReferenceCausalLM(seed=21, max_seq_len=128)


@pytest.fixture(scope="module")
def bf16_stack():
    spec = tiny_model_spec(num_layers=2, hidden=64, vocab_size=256, max_seq_len=128)
    return tiny_stack(spec, strategy="prefill_decode", dtype=torch.bfloat16)


def bf16_run(model, prompts, **kw):
    """Every prompt is prefilled whole (budget and threshold above any prompt), so only
    the pool size differs between runs."""
    engine = LLMEngine(
        model,
        block_size=4,
        dtype=torch.bfloat16,
        max_num_batched_tokens=2048,
        long_prefill_token_threshold=2048,
        max_num_seqs=64,
        **kw,
    )
    outs = engine.generate(prompts, SamplingParams(), StopConditions(max_new_tokens=16))
    return [o.token_ids for o in outs], engine


def test_bf16_outputs_under_preemption_with_swap_equal_a_pool_that_never_preempts(bf16_stack):
    prompts = random_prompts(64, 256, 4, 20, seed=7)
    big, big_engine = bf16_run(bf16_stack, prompts, num_blocks=2000)
    assert big_engine.stats.preemptions == 0
    small, engine = bf16_run(bf16_stack, prompts, num_blocks=40, swap_blocks=200)
    assert engine.stats.preemptions > 20
    assert small == big
    assert engine.stats.recompute_preemptions == 0
    assert engine.stats.swapped_out_blocks == engine.stats.swapped_in_blocks > 0
    assert engine.num_free_blocks == 40 and engine.host_pool.num_free_blocks == 200


def test_bf16_outputs_do_not_depend_on_what_else_is_batched_when_prompts_are_prefilled_whole(
    bf16_stack,
):
    """The guarantee the runtime README states: with each prompt prefilled in one pass,
    a request's bf16 tokens are the same alone or in a batch of 24."""
    prompts = random_prompts(24, 256, 4, 20, seed=17)
    batched, _ = bf16_run(bf16_stack, prompts, num_blocks=2000)
    alone = [bf16_run(bf16_stack, [p], num_blocks=2000)[0][0] for p in prompts]
    assert batched == alone


def test_swap_disabled_recomputes_and_counts_it():
    prompts = random_prompts(8, 64, 8, 14, seed=3)
    engine = LLMEngine(MODEL, num_blocks=12, block_size=4, max_num_batched_tokens=32, swap_blocks=0)
    outs = engine.generate(prompts, SamplingParams(), StopConditions(max_new_tokens=16))
    assert engine.stats.preemptions > 0
    assert engine.stats.recompute_preemptions == engine.stats.preemptions
    assert engine.stats.swapped_out_blocks == 0
    for p, o in zip(prompts, outs, strict=True):
        assert o.token_ids == greedy_reference(MODEL, p, 16)


def test_a_full_host_pool_falls_back_to_recompute():
    prompts = random_prompts(8, 64, 8, 14, seed=3)
    engine = LLMEngine(MODEL, num_blocks=12, block_size=4, max_num_batched_tokens=32, swap_blocks=4)
    outs = engine.generate(prompts, SamplingParams(), StopConditions(max_new_tokens=16))
    stats = engine.stats
    assert 0 < stats.recompute_preemptions < stats.preemptions  # some swapped, some recomputed
    assert stats.swapped_out_blocks == stats.swapped_in_blocks > 0
    for p, o in zip(prompts, outs, strict=True):
        assert o.token_ids == greedy_reference(MODEL, p, 16)
    assert engine.num_free_blocks == 12 and engine.host_pool.num_free_blocks == 4


def test_a_cache_of_plain_tensor_pairs_is_swapped_and_resumes_exactly():
    """The reference model's cache is [(key, value), ...] per layer; its pools are found by
    walking the lists. Seeded sampling resumes with the same tokens."""
    cache = MODEL.new_cache(12, 4)
    assert len(cache_block_pools(cache, 12)) == 2 * len(cache)
    prompts = random_prompts(8, 64, 8, 14, seed=4)
    params = [SamplingParams(temperature=1.0, top_p=0.9, seed=i) for i in range(8)]
    stop = StopConditions(max_new_tokens=16)
    big = LLMEngine(MODEL, num_blocks=200, block_size=4)
    expected = [
        big.generate([p], s, stop)[0].token_ids for p, s in zip(prompts, params, strict=True)
    ]
    engine = LLMEngine(
        MODEL, num_blocks=12, block_size=4, max_num_batched_tokens=32, swap_blocks=48
    )
    ids = [engine.add_request(p, s, stop) for p, s in zip(prompts, params, strict=True)]
    outs = {o.request_id: o.token_ids for o in engine.run_until_done()}
    assert engine.stats.preemptions > 0 and engine.stats.recompute_preemptions == 0
    assert [outs[i] for i in ids] == expected


def test_aborting_a_swapped_out_request_frees_its_host_blocks():
    engine = LLMEngine(MODEL, num_blocks=8, block_size=4, max_num_batched_tokens=32, swap_blocks=8)
    ids = engine.add_requests(
        [[1] * 12, [2] * 12], SamplingParams(), StopConditions(max_new_tokens=20)
    )
    while engine.host_pool.num_free_blocks == 8:
        engine.step()
    swapped = next(rid for rid in ids if engine.output(rid).num_preemptions > 0)
    engine.abort(swapped)
    assert engine.host_pool.num_free_blocks == 8
    engine.run_until_done()
    assert engine.num_free_blocks == 8


def test_swap_blocks_must_be_a_non_negative_integer():
    with pytest.raises(InvalidParameterError, match=r"swap_blocks=-1 .*integer >= 0"):
        LLMEngine(MODEL, num_blocks=8, block_size=4, swap_blocks=-1)


def test_a_one_token_prompt_chunk_runs_in_prefill_and_a_generated_token_in_decode():
    """Which kernel computes a prompt token must not depend on where the token budget
    split the prompt: a prompt's last token fed alone is still a PREFILL pass."""
    runner = ModelRunner(MODEL, 8, 4, 64)
    runner.forward([Chunk(0, [1, 2, 3], 0)], ExecutionMode.PREFILL)
    assert runner.plan([Chunk(0, [4], 1, generated=False)]) == [(ExecutionMode.PREFILL, [0])]
    assert runner.plan([Chunk(0, [4], 1, generated=True)]) == [(ExecutionMode.DECODE, [0])]
