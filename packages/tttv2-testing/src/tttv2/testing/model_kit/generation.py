"""Generation through ``tttv2.serve.runtime`` with a loaded model, against transformers:
seeded sampling is reproducible and draws only tokens transformers ranks in its top k;
EOS, length and context limits stop where they should; streamed text is the tokenizer's
decoding; requests joining and leaving a continuous batch produce transformers' greedy
tokens for each prompt alone."""

from __future__ import annotations

from typing import Any

import torch

from tttv2.serve.runtime import LLMEngine, SamplingParams, StopConditions
from tttv2.testing.hf import reference_outputs
from tttv2.testing.model_kit.running import engine_for, generate, prompt


def check_seeded_sampling(loaded: Any, vocab_size: int) -> None:
    ids = prompt(vocab_size, n=12)
    sampling = SamplingParams(temperature=1.0, top_k=20, top_p=0.95, seed=1234)
    first = generate(loaded, ids, 24, sampling).token_ids
    assert generate(loaded, ids, 24, sampling).token_ids == first
    others = [
        generate(loaded, ids, 24, SamplingParams(temperature=1.0, top_k=20, seed=s)).token_ids
        for s in (1, 2, 3)
    ]
    assert any(o != first for o in others), "every seed drew the same tokens"


def check_sampled_tokens_in_reference_top_k(loaded: Any, checkpoint: Any, k: int = 3) -> None:
    """Teacher-force the sampled continuation through transformers: every sampled token
    is among its ``k`` most likely at that position."""
    ids = prompt(checkpoint.vocab_size, n=10, seed=3)
    out = generate(loaded, ids, 20, SamplingParams(temperature=2.0, top_k=k, seed=5)).token_ids
    ref = reference_outputs(checkpoint, ids + out, greedy_steps=0)
    top = ref.logits[len(ids) - 1 : -1].topk(k, dim=-1).indices
    assert all(tok in row.tolist() for tok, row in zip(out, top, strict=True))
    assert len(set(out)) > 1, "it did not sample"


def check_stops(loaded: Any, vocab_size: int) -> None:
    """EOS stops and is kept; max_new_tokens and the context length end a request."""
    ids = prompt(vocab_size, n=12, seed=4)
    greedy = generate(loaded, ids, 32).token_ids
    eos = greedy[5]
    first = greedy.index(eos)
    out = generate(loaded, ids, 32, stop=StopConditions(max_new_tokens=32, eos_token_ids=(eos,)))
    assert out.finish_reason == "stop" and out.stop_reason == eos
    assert out.token_ids == greedy[: first + 1]
    out = generate(loaded, prompt(vocab_size, n=8), 5)
    assert out.finish_reason == "length" and len(out.token_ids) == 5
    near_full = prompt(vocab_size, n=loaded.max_context - 3, seed=9)
    engine = engine_for(loaded, loaded.max_context)
    out = engine.generate([near_full], SamplingParams(), StopConditions(max_new_tokens=50))[0]
    assert out.finish_reason == "context"
    assert len(near_full) + len(out.token_ids) == loaded.max_context


def check_streamed_text(loaded: Any, vocab_size: int) -> None:
    tok = loaded.tokenizer
    assert tok is not None, "the checkpoint has no tokenizer.json"
    ids = tok.encode("The quick brown fox").ids
    engine = engine_for(
        loaded, len(ids) + 16, detokenize=lambda t: tok.decode(t, skip_special_tokens=True)
    )
    events = list(engine.stream(ids, SamplingParams(), StopConditions(max_new_tokens=16)))
    output = events[-1].output
    assert output is not None, "the last event of a finished request carries its output"
    assert "".join(e.text for e in events) == output.text
    assert output.text == tok.decode(output.token_ids, skip_special_tokens=True)
    assert torch.tensor(output.token_ids).lt(vocab_size).all()


#: (prompt length, tokens to generate): 1-token prompts, prompts longer than the per-step
#: token budget, lengths around the 16-token block size; each leaves after its own count.
REQUESTS = [
    (1, 12), (5, 3), (17, 20), (40, 7), (3, 16), (33, 5), (8, 9), (64, 2), (2, 18), (16, 11),
    (29, 4), (11, 14), (47, 6), (6, 19), (21, 8), (70, 10), (9, 15), (14, 3), (38, 13), (4, 17),
]  # fmt: skip


def check_continuous_batching(loaded: Any, checkpoint: Any, max_num_seqs: int = 4) -> None:
    """20 greedy fp32 requests of mixed lengths join a running batch as others leave (at
    most ``max_num_seqs`` at once, 32 tokens a step, so long prompts are prefilled in
    chunks beside other requests' decode steps); each request's tokens equal
    transformers' greedy continuation of its prompt run alone."""
    engine = LLMEngine(
        loaded.model, num_blocks=32, block_size=16, max_seq_len=loaded.max_context,
        max_num_batched_tokens=32, max_num_seqs=max_num_seqs,
    )  # fmt: skip
    g = torch.Generator().manual_seed(11)
    ids = [torch.randint(2, checkpoint.vocab_size, (n,), generator=g).tolist() for n, _ in REQUESTS]
    rid: dict[int, object] = {}
    outputs: dict[object, list[int]] = {}
    started: set[object] = set()
    joined_mid_batch = most_at_once = steps = 0

    def add(i: int) -> None:
        nonlocal joined_mid_batch
        joined_mid_batch += len(started) >= 2
        stop = StopConditions(max_new_tokens=REQUESTS[i][1])
        rid[i] = engine.add_request(ids[i], SamplingParams(), stop)

    for i in range(6):
        add(i)
    following = iter(range(6, len(REQUESTS)))
    while engine.has_unfinished() or len(rid) < len(REQUESTS):
        events = engine.step()
        steps += 1
        started.update(e.request_id for e in events)
        most_at_once = max(most_at_once, len(started))
        left = [e.request_id for e in events if e.finished]
        for r in left:
            started.discard(r)
            outputs[r] = engine.pop_output(r).token_ids
        if left or steps % 3 == 0:
            nxt = next(following, None)
            if nxt is not None:
                add(nxt)
    assert len(outputs) == len(REQUESTS)
    assert most_at_once == max_num_seqs and joined_mid_batch >= 10, "not a continuous batch"
    hf = checkpoint.load_model()
    for i, (p, (_, n)) in enumerate(zip(ids, REQUESTS, strict=True)):
        expected = reference_outputs(hf, p, greedy_steps=n).greedy_tokens.tolist()
        assert outputs[rid[i]] == expected, f"request {i}: prompt of {len(p)} tokens"
    assert len({t for toks in outputs.values() for t in toks}) > 20, "constant sequences"
