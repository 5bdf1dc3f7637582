"""Stopping: EOS ids, stop strings across token boundaries (trimmed text), max new
tokens, the context limit, and clear admission errors."""

import pytest
from reference_causal_lm import ReferenceCausalLM, greedy_reference
from runtime_helpers import random_prompts

from tttv2.serve.runtime import (
    IncrementalDetokenizer,
    InvalidRequestError,
    LLMEngine,
    Request,
    SamplingParams,
    StopConditions,
)
from tttv2.serve.runtime.stop_checker import StopChecker

MODEL = ReferenceCausalLM(seed=31, vocab_size=64, max_seq_len=64)
# every token is a piece of 1-3 letters, so words run across token boundaries
PIECES = [
    ("ab", "c", "de", "a", "bca", "e", "d", "cab")[i % 8] + ("", "a", " ")[i % 3] for i in range(64)
]


def detok(ids):
    return "".join(PIECES[i] for i in ids)


def utf8(ids):
    return bytes(ids).decode("utf-8", errors="replace")


def test_incremental_detokenizer_holds_back_split_characters():
    text = "héllo wörld €!"
    d = IncrementalDetokenizer(utf8, list(b"ab"))
    deltas = [d.add(b) for b in text.encode()]
    assert "".join(deltas) == text
    assert all("\ufffd" not in x for x in deltas)
    assert deltas[1] == "" and deltas[2] == "é"  # the two bytes of é


def test_stop_string_split_inside_a_character():
    checker = StopChecker(
        StopConditions(stop_strings=("ör",)), [], context_limit=1000, detokenize=utf8
    )
    results = [checker.add(b, n + 1) for n, b in enumerate("wör".encode())]
    reasons = [r for _, r, _ in results]
    assert reasons == [None, None, None, "stop"]  # w, ö (2 bytes), r
    assert checker.text == "w" and "".join(t for t, _, _ in results) == "w"
    assert results[-1][2] == "ör"


def test_text_that_may_become_a_stop_string_is_held_back():
    chars = "abxyxy"
    checker = StopChecker(
        StopConditions(stop_strings=("xyz",)), [], 1000, lambda ids: "".join(chars[i] for i in ids)
    )
    released = [checker.add(i, i + 1)[0] for i in range(len(chars))]
    assert released == ["a", "b", "", "", "xy", ""]  # "xy" could still become "xyz"
    assert checker.finish() == "xy"


def stop_string_case():
    """A prompt whose greedy continuation contains a string spanning a token boundary."""
    prompt = random_prompts(1, 64, 6, 6, seed=7)[0]
    tokens = greedy_reference(MODEL, prompt, 30)
    text = detok(tokens)
    for t in range(3, len(tokens) - 1):
        boundary = len(detok(tokens[:t]))
        stop = text[boundary - 1 : boundary + 2]
        first = text.find(stop)
        starts = [len(detok(tokens[:i])) for i in range(len(tokens))]
        if first not in starts:  # the first occurrence begins inside a token: spans a boundary
            return prompt, tokens, stop
    raise AssertionError("no suitable stop string in this continuation")


def test_stop_string_across_tokens_trims_text_and_stops():
    prompt, tokens, stop = stop_string_case()
    text = detok(tokens)
    cut = text.find(stop)
    n = next(
        i for i in range(1, len(tokens) + 1) if stop in detok(tokens[:i])
    )  # token completing it
    engine = LLMEngine(MODEL, num_blocks=64, block_size=4, detokenize=detok)
    events = list(
        engine.stream(
            prompt, SamplingParams(), StopConditions(max_new_tokens=30, stop_strings=(stop,))
        )
    )
    out = events[-1].output
    assert out.finish_reason == "stop" and out.stop_reason == stop
    assert out.token_ids == tokens[:n]
    assert out.text == text[:cut]
    assert "".join(e.text for e in events) == text[:cut]  # streamed text never overshoots


def test_eos_ids_stop_generation():
    prompt = random_prompts(1, 64, 5, 5, seed=8)[0]
    tokens = greedy_reference(MODEL, prompt, 12)
    eos = tokens[4]
    first = tokens.index(eos)
    engine = LLMEngine(MODEL, num_blocks=64, block_size=4, detokenize=detok)
    out = engine.generate(
        [prompt], SamplingParams(), StopConditions(max_new_tokens=12, eos_token_ids=(63, eos))
    )[0]
    assert out.token_ids == tokens[: first + 1]  # the EOS token is kept in token_ids...
    assert out.text == detok(tokens[:first])  # ...but not in the text
    assert out.finish_reason == "stop" and out.stop_reason == eos


def test_max_new_tokens_gives_length():
    engine = LLMEngine(MODEL, num_blocks=64, block_size=4)
    out = engine.generate([[1, 2, 3]], SamplingParams(), StopConditions(max_new_tokens=7))[0]
    assert len(out.token_ids) == 7 and out.finish_reason == "length"


def test_context_limit_stops_cleanly():
    engine = LLMEngine(MODEL, num_blocks=64, block_size=4)  # max_seq_len 64 from the model
    prompt = random_prompts(1, 64, 60, 60, seed=9)[0]
    out = engine.generate([prompt])[0]  # no max_new_tokens
    assert out.finish_reason == "context"
    assert out.token_ids == greedy_reference(MODEL, prompt, 100)  # stops at 64 tokens too
    assert len(prompt) + len(out.token_ids) == 64


def test_a_small_kv_pool_is_the_context_limit():
    engine = LLMEngine(MODEL, num_blocks=5, block_size=4)  # 20 tokens < max_seq_len 64
    assert engine.context_limit == 20
    out = engine.generate([list(range(15))])[0]
    assert out.finish_reason == "context" and len(out.token_ids) == 5


def test_prompt_at_or_over_the_context_limit_is_refused():
    engine = LLMEngine(MODEL, num_blocks=64, block_size=4)
    with pytest.raises(InvalidRequestError, match="64 tokens but the context limit is 64"):
        engine.add_request(list(range(64)))
    with pytest.raises(InvalidRequestError, match="at most 63"):
        engine.add_request([1] * 100)
    engine.add_request([1] * 63)  # leaves room for exactly one token


def test_admission_errors_are_clear():
    engine = LLMEngine(MODEL, num_blocks=64, block_size=4)
    assert engine.vocab_size == 64
    with pytest.raises(InvalidRequestError, match="token id 64 is outside the vocabulary"):
        engine.add_request([1, 64])
    with pytest.raises(InvalidRequestError, match="detokenize"):
        engine.add_request([1], stop=StopConditions(stop_strings=("x",)))
    with pytest.raises(InvalidRequestError, match="empty"):
        engine.add_request([])
    engine.add_request(Request([1], request_id="a"))
    with pytest.raises(InvalidRequestError, match="already in use"):
        engine.add_request(Request([2], request_id="a"))
    with pytest.raises(TypeError, match="list of prompts"):
        engine.generate([1, 2, 3])
