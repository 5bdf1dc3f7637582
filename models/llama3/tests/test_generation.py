"""Generation through tttv2.core.runtime with our Llama: seeded sampling is reproducible
and draws only tokens transformers ranks in the top k; EOS, length and context limits stop
generation where they should."""

from __future__ import annotations

import pytest
import torch
from llama_helpers import engine_for, generate, prompt
from tttv2_llama3 import load

from tttv2.core.runtime import SamplingParams, StopConditions
from tttv2.testing.hf import reference_outputs


@pytest.fixture(scope="module")
def tiny(build):
    ck = build({"tie_word_embeddings": True})
    return ck, load(ck.path)


def test_seeded_sampling_is_reproducible_and_seed_dependent(tiny):
    ck, loaded = tiny
    ids = prompt(ck.vocab_size, n=12)
    sampling = SamplingParams(temperature=1.0, top_k=20, top_p=0.95, seed=1234)
    first = generate(loaded, ids, 24, sampling).token_ids
    again = generate(loaded, ids, 24, sampling).token_ids
    assert first == again
    others = [
        generate(loaded, ids, 24, SamplingParams(temperature=1.0, top_k=20, seed=s)).token_ids
        for s in (1, 2, 3)
    ]
    assert any(o != first for o in others)


def test_sampled_tokens_are_in_transformers_top_k(tiny):
    """Teacher-force the sampled continuation through transformers: every sampled token is
    among the k most likely under transformers' logits at its position."""
    ck, loaded = tiny
    ids = prompt(ck.vocab_size, n=10, seed=3)
    k = 3
    out = generate(loaded, ids, 20, SamplingParams(temperature=2.0, top_k=k, seed=5)).token_ids
    ref = reference_outputs(ck, ids + out, greedy_steps=0)
    top = ref.logits[len(ids) - 1 : -1].topk(k, dim=-1).indices
    assert all(tok in row.tolist() for tok, row in zip(out, top, strict=True))
    assert len(set(out)) > 1  # it did sample


def test_eos_stops_and_is_kept(tiny):
    ck, loaded = tiny
    ids = prompt(ck.vocab_size, n=12, seed=4)
    greedy = generate(loaded, ids, 32).token_ids
    eos = greedy[5]
    first = greedy.index(eos)
    out = generate(loaded, ids, 32, stop=StopConditions(max_new_tokens=32, eos_token_ids=(eos,)))
    assert out.finish_reason == "stop" and out.stop_reason == eos
    assert out.token_ids == greedy[: first + 1]


def test_length_and_context_limits(tiny):
    ck, loaded = tiny
    out = generate(loaded, prompt(ck.vocab_size, n=8), 5)
    assert out.finish_reason == "length" and len(out.token_ids) == 5
    near_full = prompt(ck.vocab_size, n=loaded.max_context - 3, seed=9)
    engine = engine_for(loaded, loaded.max_context)
    out = engine.generate([near_full], SamplingParams(), StopConditions(max_new_tokens=50))[0]
    assert (
        out.finish_reason == "context" and len(near_full) + len(out.token_ids) == loaded.max_context
    )


def test_streamed_text_is_the_tokenizer_decoding(tiny):
    ck, loaded = tiny
    tok = loaded.tokenizer
    ids = tok.encode("The quick brown fox").ids
    engine = engine_for(
        loaded, len(ids) + 16, detokenize=lambda t: tok.decode(t, skip_special_tokens=True)
    )
    events = list(engine.stream(ids, SamplingParams(), StopConditions(max_new_tokens=16)))
    output = events[-1].output
    assert "".join(e.text for e in events) == output.text
    assert output.text == tok.decode(output.token_ids, skip_special_tokens=True)
    assert torch.tensor(output.token_ids).lt(ck.vocab_size).all()
