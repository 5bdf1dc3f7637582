"""Modes agree with each other (block against block, not only against the reference):
decode after prefill = prefill of the longer sequence, chunked = one-shot prefill,
speculative verify = sequential decode (and decoding continues correctly after a
rollback), a continuous batch = each sequence run alone."""

from __future__ import annotations

import torch
from attention_harness import (
    assert_matches,
    attention_specs,
    make_attention,
    make_cache,
    random_inputs,
    reference_outputs,
    run_schedule,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from tttv2.core import MultiModeStrategy

TIGHT = torch.float32


@settings(max_examples=8, deadline=None)
@given(spec=attention_specs(), n=st.integers(1, 10), block=st.sampled_from([1, 4, 16]))
def test_decode_after_prefill_equals_prefill_of_longer_sequence(spec, n, block) -> None:
    attn = make_attention(spec)
    xs = random_inputs(spec, {0: n + 1})
    cache, manager = make_cache(spec, block_size=block)
    stepwise = run_schedule(attn, cache, manager, xs, [("prefill", {0: n}), ("decode", {0: 1})])[0]
    cache, manager = make_cache(spec, block_size=block)
    one_shot = run_schedule(attn, cache, manager, xs, [("prefill", {0: n + 1})])[0]
    assert_matches(stepwise, one_shot, TIGHT, "decode vs prefill")


@settings(max_examples=8, deadline=None)
@given(
    spec=attention_specs(),
    lens=st.lists(st.integers(1, 14), min_size=1, max_size=3),
    chunk=st.integers(1, 6),
)
def test_chunked_prefill_equals_one_shot(spec, lens, chunk) -> None:
    step = dict(enumerate(lens))
    xs = random_inputs(spec, step)
    chunked_attn = make_attention(spec, MultiModeStrategy(chunk_size=chunk))
    cache, manager = make_cache(spec)
    chunked = run_schedule(chunked_attn, cache, manager, xs, [("long_context", step)])
    one_shot_attn = make_attention(spec)  # same seed: same weights
    cache, manager = make_cache(spec)
    one_shot = run_schedule(one_shot_attn, cache, manager, xs, [("prefill", step)])
    for s in step:
        assert_matches(chunked[s], one_shot[s], TIGHT, f"chunked vs one-shot, sequence {s}")


@settings(max_examples=8, deadline=None)
@given(
    spec=attention_specs(),
    prompt=st.lists(st.integers(1, 8), min_size=1, max_size=3),
    k=st.integers(1, 4),
)
def test_speculative_verify_equals_sequential_decode(spec, prompt, k) -> None:
    attn = make_attention(spec, MultiModeStrategy())
    seqs = dict(enumerate(prompt))
    xs = random_inputs(spec, {s: n + k + 1 for s, n in seqs.items()})
    cache, manager = make_cache(spec)
    verify = run_schedule(
        attn, cache, manager, xs, [("prefill", seqs), ("speculative", dict.fromkeys(seqs, k + 1))]
    )
    cache, manager = make_cache(spec)
    sequential = run_schedule(
        attn,
        cache,
        manager,
        xs,
        [("prefill", seqs)] + [("decode", dict.fromkeys(seqs, 1))] * (k + 1),
    )
    for s in seqs:
        assert_matches(verify[s], sequential[s], TIGHT, f"verify vs decode, sequence {s}")


@settings(max_examples=8, deadline=None)
@given(spec=attention_specs(), data=st.data())
def test_decoding_continues_correctly_after_speculative_rollback(spec, data) -> None:
    """Verify drafts, reject a suffix (``KVBlockManager.truncate``), decode new tokens in
    their place: the outputs of the accepted sequence equal the reference over it."""
    attn = make_attention(spec, MultiModeStrategy())
    seqs = (0, 1)
    prompt = {s: data.draw(st.integers(1, 8)) for s in seqs}
    k = data.draw(st.integers(1, 4))
    accepted = {s: data.draw(st.integers(0, k + 1)) for s in seqs}  # drafts kept per sequence
    after = 3  # tokens decoded after the rollback
    cache, manager = make_cache(spec, block_size=data.draw(st.sampled_from([1, 2, 4])))
    drafts = random_inputs(spec, dict.fromkeys(seqs, k + 1), seed=7)
    # The final (accepted) sequence: prompt, accepted drafts, then the tokens decoded after.
    tail = random_inputs(spec, {s: prompt[s] + after for s in seqs}, seed=8)
    final = {
        s: torch.cat([tail[s][: prompt[s]], drafts[s][: accepted[s]], tail[s][prompt[s] :]])
        for s in seqs
    }

    got = run_schedule(attn, cache, manager, tail, [("prefill", prompt)])
    verify = run_schedule(
        attn, cache, manager, drafts, [("speculative", dict.fromkeys(seqs, k + 1))]
    )
    for s in seqs:
        manager.truncate(s, prompt[s] + accepted[s])
    done = dict(prompt)  # continue feeding `tail` after the prompt
    rest = run_schedule(
        attn, cache, manager, tail, [("decode", dict.fromkeys(seqs, 1))] * after, done
    )
    want = reference_outputs(attn, final)
    for s in seqs:
        outputs = torch.cat([got[s], verify[s][: accepted[s]], rest[s]])
        assert_matches(outputs, want[s], TIGHT, f"after rollback, sequence {s}")


@settings(max_examples=8, deadline=None)
@given(spec=attention_specs(), data=st.data())
def test_continuous_batch_equals_each_sequence_alone(spec, data) -> None:
    attn = make_attention(spec, "continuous_batching")
    n0, n1, n2 = (data.draw(st.integers(2, 7)) for _ in range(3))
    schedule = [
        ("continuous_batch", {0: n0, 1: n1}),
        ("continuous_batch", {0: 1, 1: 1, 2: n2}),  # 2 joins while 0 and 1 decode
        ("continuous_batch", {2: 1, 0: 1, 1: 3}),  # 1 brings several tokens on its context
        ("continuous_batch", {1: 1, 2: 1}),
    ]
    totals = {s: sum(step.get(s, 0) for _, step in schedule) for s in (0, 1, 2)}
    xs = random_inputs(spec, totals)
    cache, manager = make_cache(spec)
    batched = run_schedule(attn, cache, manager, xs, schedule)
    for s in (0, 1, 2):
        alone_schedule = [(mode, {s: step[s]}) for mode, step in schedule if s in step]
        cache, manager = make_cache(spec)
        alone = run_schedule(attn, cache, manager, xs, alone_schedule)[s]
        assert_matches(batched[s], alone, TIGHT, f"continuous batch vs alone, sequence {s}")
