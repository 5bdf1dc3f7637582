"""Continuous batching with our Llama: 20 greedy fp32 requests of mixed prompt lengths join a
running batch as others leave (tttv2.core's LLMEngine: at most 4 sequences at once, 32
tokens per step, so long prompts are prefilled in chunks next to other requests' decode
steps), and every request's tokens equal transformers' greedy continuation of its prompt
run alone."""

from __future__ import annotations

import torch
from conftest import VARIANTS
from tttv2_llama3 import load

from tttv2.core.runtime import LLMEngine, SamplingParams, StopConditions
from tttv2.testing.hf import reference_outputs

#: (prompt length, tokens to generate): 1-token prompts, prompts longer than the per-step
#: token budget, lengths around the 16-token block size; each leaves after its own count.
REQUESTS = [
    (1, 12), (5, 3), (17, 20), (40, 7), (3, 16), (33, 5), (8, 9), (64, 2), (2, 18), (16, 11),
    (29, 4), (11, 14), (47, 6), (6, 19), (21, 8), (70, 10), (9, 15), (14, 3), (38, 13), (4, 17),
]  # fmt: skip
FIRST_WAVE = 6
MAX_NUM_SEQS = 4


def prompts(vocab_size: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(11)
    return [torch.randint(2, vocab_size, (n,), generator=g).tolist() for n, _ in REQUESTS]


def test_requests_joining_and_leaving_a_batch_match_transformers_alone(build):
    overrides, kwargs = VARIANTS["llama3.1-rope-scaling"]
    ck = build(overrides, **kwargs)
    loaded = load(ck.path, dtype=torch.float32)
    engine = LLMEngine(
        loaded.model,
        num_blocks=32,
        block_size=16,
        max_seq_len=loaded.max_context,
        max_num_batched_tokens=32,
        max_num_seqs=MAX_NUM_SEQS,
    )
    ids = prompts(ck.vocab_size)
    rid: dict[int, object] = {}  # request index -> engine request id
    outputs: dict[object, list[int]] = {}
    started: set[object] = set()  # have produced a token and not finished
    joined_mid_batch = 0  # requests added while others were decoding
    most_at_once = 0

    def add(i: int) -> None:
        nonlocal joined_mid_batch
        joined_mid_batch += len(started) >= 2
        rid[i] = engine.add_request(ids[i], SamplingParams(), StopConditions(max_new_tokens=REQUESTS[i][1]))

    for i in range(FIRST_WAVE):
        add(i)
    following = iter(range(FIRST_WAVE, len(REQUESTS)))
    steps = 0
    while engine.has_unfinished() or len(rid) < len(REQUESTS):
        events = engine.step()
        steps += 1
        for event in events:
            started.add(event.request_id)
        most_at_once = max(most_at_once, len(started))
        left = [e.request_id for e in events if e.finished]
        for r in left:
            started.discard(r)
            outputs[r] = engine.pop_output(r).token_ids
        if left or steps % 3 == 0:  # one arrives when one leaves, and every third step
            nxt = next(following, None)
            if nxt is not None:
                add(nxt)
    assert len(outputs) == len(REQUESTS)
    assert most_at_once == MAX_NUM_SEQS and joined_mid_batch >= 10  # a real continuous batch

    hf = ck.load_model()
    for i, (prompt, (_, n)) in enumerate(zip(ids, REQUESTS, strict=True)):
        expected = reference_outputs(hf, prompt, greedy_steps=n).greedy_tokens.tolist()
        assert outputs[rid[i]] == expected, f"request {i}: prompt of {len(prompt)} tokens"
    generated = [t for toks in outputs.values() for t in toks]
    assert len(set(generated)) > 20  # not a comparison of constant sequences
