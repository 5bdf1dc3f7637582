"""The OpenAI endpoints through the official ``openai`` client: completions, chat,
streaming, n > 1, logprobs, stop strings, usage, /v1/models and /health."""

from __future__ import annotations

import math

import httpx
from conftest import MODEL_NAME


def test_models_and_health(server, client) -> None:
    assert [m.id for m in client.models.list().data] == [MODEL_NAME]
    assert httpx.get(f"{server.base_url}/health", timeout=10).json() == {"status": "ok"}


def test_completion_matches_the_engine_alone(server, client, tokenizer) -> None:
    out = client.completions.create(
        model=MODEL_NAME,
        prompt="the cat",
        max_tokens=12,
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    prompt_ids = tokenizer.encode("the cat").ids
    from conftest import make_engine

    from tttv2.serve.runtime import SamplingParams, StopConditions

    alone = make_engine(server.model, tokenizer).generate(
        [prompt_ids], SamplingParams(), StopConditions(max_new_tokens=12)
    )[0]
    choice = out.choices[0]
    assert choice.text == alone.text and choice.finish_reason == "length"
    assert out.usage.prompt_tokens == len(prompt_ids) and out.usage.completion_tokens == 12
    assert out.usage.total_tokens == len(prompt_ids) + 12


def test_chat_renders_the_template_and_streams_the_same_text(server, client, tokenizer) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there"},
    ]
    whole = client.chat.completions.create(
        model=MODEL_NAME, messages=messages, max_tokens=10, temperature=0
    )
    assert whole.choices[0].message.role == "assistant"
    rendered = "<s><|system|>be brief\n<|user|>hello there\n<|assistant|>"
    assert whole.usage.prompt_tokens == len(
        tokenizer.encode(rendered, add_special_tokens=False).ids
    )
    chunks = list(
        client.chat.completions.create(
            model=MODEL_NAME,
            messages=messages,
            max_tokens=10,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finals = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finals == [whole.choices[0].finish_reason]
    assert (
        chunks[-1].choices == []
        and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    )


def test_streamed_completion_has_one_chunk_per_token_and_no_usage_unless_asked(
    server, client
) -> None:
    chunks = list(
        client.completions.create(
            model=MODEL_NAME,
            prompt="a dog",
            max_tokens=7,
            temperature=0,
            stream=True,
            extra_body={"ignore_eos": True},
        )
    )
    assert len(chunks) == 7 and all(c.usage is None for c in chunks)
    whole = client.completions.create(
        model=MODEL_NAME,
        prompt="a dog",
        max_tokens=7,
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason == "length"


def test_n_choices_seeded_sampling_is_reproducible(server, client) -> None:
    kwargs = dict(
        model=MODEL_NAME,
        prompt="once upon",
        max_tokens=8,
        temperature=1.0,
        seed=7,
        n=3,
        extra_body={"ignore_eos": True},
    )
    first = client.completions.create(**kwargs)
    again = client.completions.create(**kwargs)
    assert [c.index for c in first.choices] == [0, 1, 2]
    texts = [c.text for c in first.choices]
    assert texts == [c.text for c in again.choices]
    assert len(set(texts)) > 1  # each choice has its own seed
    assert first.usage.completion_tokens == 24
    greedy = client.completions.create(
        model=MODEL_NAME, prompt="once upon", max_tokens=8, temperature=0, n=2
    )
    assert greedy.choices[0].text == greedy.choices[1].text


def test_logprobs_are_the_model_distribution(server, client, tokenizer) -> None:
    out = client.completions.create(
        model=MODEL_NAME,
        prompt="the cat",
        max_tokens=3,
        temperature=0,
        logprobs=3,
        extra_body={"ignore_eos": True},
    )
    lp = out.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 3
    # The first token's distribution, computed here without the engine.
    import torch

    ids = tokenizer.encode("the cat").ids
    with torch.no_grad():
        expected = torch.log_softmax(server.model.dense_logits(ids)[-1].float(), dim=-1)
    best = int(expected.argmax())
    assert math.isclose(lp.token_logprobs[0], float(expected[best]), abs_tol=1e-4)
    top = sorted(expected.tolist(), reverse=True)[:3]
    assert [round(v, 4) for v in lp.top_logprobs[0].values()] == [round(v, 4) for v in top]
    chat = client.chat.completions.create(
        model=MODEL_NAME,
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=2,
        temperature=0,
        logprobs=True,
        top_logprobs=2,
    )
    content = chat.choices[0].logprobs.content
    assert len(content) == chat.usage.completion_tokens and all(
        len(c.top_logprobs) == 2 for c in content
    )
    assert all(c.logprob <= 0 and c.top_logprobs[0].logprob >= c.logprob - 1e-6 for c in content)


def test_stop_strings_end_the_text_before_the_match(server, client) -> None:
    free = client.completions.create(
        model=MODEL_NAME,
        prompt="the cat",
        max_tokens=24,
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    text = free.choices[0].text
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    assert stop.strip(), text  # the random model writes something to stop on
    out = client.completions.create(
        model=MODEL_NAME,
        prompt="the cat",
        max_tokens=24,
        temperature=0,
        stop=[stop],
        extra_body={"ignore_eos": True},
    )
    assert out.choices[0].finish_reason == "stop"
    assert out.choices[0].text == text[: text.index(stop)]
    streamed = list(
        client.completions.create(
            model=MODEL_NAME,
            prompt="the cat",
            max_tokens=24,
            temperature=0,
            stop=stop,
            stream=True,
            extra_body={"ignore_eos": True},
        )
    )
    assert "".join(c.choices[0].text for c in streamed) == out.choices[0].text
