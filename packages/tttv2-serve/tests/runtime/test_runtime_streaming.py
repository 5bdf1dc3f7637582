"""Streaming (iterator and callback), timings per request and per engine, aborting."""

from reference_causal_lm import ReferenceCausalLM, greedy_reference
from runtime_helpers import random_prompts

from tttv2.serve.runtime import LLMEngine, Request, SamplingParams, StopConditions

MODEL = ReferenceCausalLM(seed=41)


def test_interleaved_streams_each_get_their_own_tokens_in_order():
    engine = LLMEngine(MODEL, num_blocks=64, block_size=4)
    a, b = random_prompts(2, 64, 4, 12, seed=1)
    sa = engine.stream(a, SamplingParams(), StopConditions(max_new_tokens=6))
    sb = engine.stream(b, SamplingParams(), StopConditions(max_new_tokens=9))
    got_a, got_b = [], []
    for ea, eb in zip(sa, sb, strict=False):  # consume alternately
        got_a.append(ea)
        got_b.append(eb)
    got_b += list(sb)
    assert [e.token_id for e in got_a] == greedy_reference(MODEL, a, 6)
    assert [e.token_id for e in got_b] == greedy_reference(MODEL, b, 9)
    assert [e.index for e in got_b] == list(range(9))
    assert [e.finished for e in got_a] == [False] * 5 + [True]
    assert got_a[-1].finish_reason == "length" and got_a[-1].output.token_ids == [
        e.token_id for e in got_a
    ]
    assert not engine.has_unfinished()


def test_callbacks_receive_every_token_and_timings_are_consistent():
    engine = LLMEngine(MODEL, num_blocks=64, block_size=4, max_num_batched_tokens=8)
    seen: dict[str, list] = {}
    prompts = random_prompts(5, 64, 3, 20, seed=2)
    for i, p in enumerate(prompts):
        rid = f"r{i}"
        seen[rid] = []
        engine.add_request(
            Request(p, SamplingParams(), StopConditions(max_new_tokens=4 + i), rid),
            callback=seen[rid].append,
        )
    outs = {o.request_id: o for o in engine.run_until_done()}
    for i, p in enumerate(prompts):
        rid, out = f"r{i}", outs[f"r{i}"]
        assert [e.token_id for e in seen[rid]] == out.token_ids == greedy_reference(MODEL, p, 4 + i)
        t = out.timings
        assert t.time_to_first_token is not None and t.time_to_first_token >= t.queue_time >= 0
        assert len(t.inter_token_latencies) == len(out.token_ids) - 1
        assert all(x >= 0 for x in t.inter_token_latencies)
        assert t.total >= t.time_to_first_token
        assert [e.time for e in seen[rid]] == t.token_times
    stats = engine.stats
    assert stats.prefill_tokens == sum(len(p) for p in prompts)  # no preemption: each prompt once
    assert stats.decode_tokens == sum(
        3 + i for i in range(5)
    )  # every token but the first is a decode
    assert stats.generated_tokens == sum(4 + i for i in range(5)) and stats.finished_requests == 5
    assert stats.prefill_tokens_per_s > 0 and stats.decode_tokens_per_s > 0


def test_abort_frees_blocks_and_ends_the_stream():
    engine = LLMEngine(MODEL, num_blocks=32, block_size=4)
    stream = engine.stream([1, 2, 3, 4, 5], SamplingParams(), StopConditions(max_new_tokens=50))
    first = next(stream)
    out = engine.abort(first.request_id)
    assert out.finish_reason == "abort" and len(out.token_ids) == 1
    assert list(stream) == []
    assert engine.num_free_blocks == 32 and not engine.has_unfinished()
