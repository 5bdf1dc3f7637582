"""Continuous batching: a request's tokens do not depend on what shares its batch.

Every request is compared with (a) the same request alone in its own engine and (b) greedy
decoding by full recomputation without any cache (``dense_logits``), while 16+ other
requests of mixed prompt and output lengths join and leave and long prompts are
prefilled in chunks alongside decoding requests. fp32 throughout."""

import pytest
import torch
from reference_causal_lm import ReferenceCausalLM, greedy_reference
from runtime_helpers import random_limits, random_prompts, run_staggered

from tttv2.core import ExecutionMode
from tttv2.serve.runtime import LLMEngine, Request, SamplingParams, StopConditions, sample
from tttv2.serve.runtime.sampler import SamplingRow

PREFILL_DECODE = (ExecutionMode.PREFILL, ExecutionMode.DECODE)
WITH_CB = (*PREFILL_DECODE, ExecutionMode.CONTINUOUS_BATCH)


def make_requests(sampling_for, n=18, seed=0):
    prompts = random_prompts(n, 64, 2, 40, seed=seed)
    limits = random_limits(n, 3, 24, seed=seed)
    return [
        Request(p, sampling_for(i), s, request_id=f"r{i}")
        for i, (p, s) in enumerate(zip(prompts, limits, strict=True))
    ]


@pytest.mark.parametrize(
    "modes", [PREFILL_DECODE, WITH_CB], ids=["prefill+decode passes", "continuous_batch pass"]
)
def test_greedy_batch_invariance(modes):
    model = ReferenceCausalLM(seed=11, modes=modes)
    requests = make_requests(lambda i: SamplingParams())
    engine = LLMEngine(model, num_blocks=256, block_size=4, max_num_batched_tokens=24)
    batched = run_staggered(engine, requests, join_every=1, first=6)
    assert len(batched) == len(requests)
    for r in requests:
        alone = LLMEngine(model, num_blocks=64, block_size=4, max_num_batched_tokens=24).generate(
            [r]
        )[0]
        expected = greedy_reference(model, r.prompt_ids, r.stop.max_new_tokens)
        assert alone.token_ids == expected, r.request_id
        assert batched[r.request_id] == expected, r.request_id
    assert max(len(q) for _, q, _ in model.passes) >= 8  # many requests shared passes
    used = {mode for mode, _, _ in model.passes}
    assert used <= set(modes)
    if ExecutionMode.CONTINUOUS_BATCH in modes:
        assert ExecutionMode.CONTINUOUS_BATCH in used  # mixed steps ran as one pass
    assert engine.num_free_blocks == 256  # every finished request gave its blocks back


def reference_sampled(model, request):
    """Seeded sampling by full recomputation, one request, no engine."""
    gen = torch.Generator().manual_seed(request.sampling.seed)
    tokens, out = list(request.prompt_ids), []
    while len(out) < request.stop.max_new_tokens:
        logits = model.dense_logits(tokens)[-1:]
        t = sample(logits, [SamplingRow(request.sampling, gen, request.prompt_ids, out)])[0]
        out.append(t)
        tokens.append(t)
    return out


def test_seeded_sampling_batch_invariance():
    model = ReferenceCausalLM(seed=12, modes=WITH_CB)

    def params(i):
        return SamplingParams(
            temperature=0.7 + 0.1 * (i % 5),
            top_k=(0, 5, 20)[i % 3],
            top_p=(1.0, 0.9)[i % 2],
            min_p=(0.0, 0.05)[i % 2],
            repetition_penalty=(1.0, 1.3)[i % 2],
            frequency_penalty=(0.0, 0.4)[i % 3 == 0],
            seed=100 + i,
        )

    requests = make_requests(params, seed=1)
    engine = LLMEngine(model, num_blocks=256, block_size=4, max_num_batched_tokens=20)
    batched = run_staggered(engine, requests, join_every=3, first=5)
    for r in requests:
        assert batched[r.request_id] == reference_sampled(model, r), r.request_id


def test_long_prompt_is_chunked_and_does_not_stall_decoding():
    model = ReferenceCausalLM(seed=13, modes=WITH_CB)
    engine = LLMEngine(model, num_blocks=128, block_size=8, max_num_batched_tokens=16)
    short = [
        engine.add_request([1, 2, 3], stop=StopConditions(max_new_tokens=40)) for _ in range(3)
    ]
    for _ in range(4):
        engine.step()  # the short ones are decoding now
    long_prompt = random_prompts(1, 64, 150, 150, seed=5)[0]
    long_id = engine.add_request(long_prompt, stop=StopConditions(max_new_tokens=3))
    first_pass = len(model.passes)
    steps_while_prefilling = 0
    while engine.output(long_id).token_ids == []:
        events = engine.step()
        produced = {e.request_id for e in events}
        assert set(short) <= produced  # every decoding request got its token this step
        steps_while_prefilling += 1
    assert steps_while_prefilling >= 150 // 16
    for _, query_lens, _ in model.passes[first_pass:]:
        assert sum(query_lens) <= 16  # the per-step token budget
    out = engine.run_until_done()
    by_id = {o.request_id: o for o in out}
    assert by_id[long_id].token_ids == greedy_reference(model, long_prompt, 3)


def test_without_continuous_batch_mode_mixed_steps_split_into_two_passes():
    model = ReferenceCausalLM(seed=14, modes=PREFILL_DECODE)
    engine = LLMEngine(model, num_blocks=64, block_size=4, max_num_batched_tokens=64)
    engine.add_request([5, 6, 7], stop=StopConditions(max_new_tokens=5))
    engine.step()
    engine.add_request([8, 9], stop=StopConditions(max_new_tokens=5))
    model.passes.clear()
    engine.step()  # request 1 decodes while request 2 prefills
    assert [(m, q, c) for m, q, c in model.passes] == [
        (ExecutionMode.PREFILL, (2,), (0,)),
        (ExecutionMode.DECODE, (1,), (3,)),
    ]


def test_finished_requests_leave_and_free_their_blocks_at_once():
    model = ReferenceCausalLM(seed=15)
    engine = LLMEngine(model, num_blocks=32, block_size=4)
    a = engine.add_request(list(range(10)), stop=StopConditions(max_new_tokens=2))
    engine.add_request(list(range(10)), stop=StopConditions(max_new_tokens=30))
    while not engine.output(a).finished:
        engine.step()
    # only the long request holds blocks now: ceil((10 + tokens so far - 1) / 4)
    other = engine.scheduler.running[0]
    assert len(engine.scheduler.running) == 1
    assert engine.num_free_blocks == 32 - -(-other.num_computed // 4)
