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
    out = client.completions.create(model=MODEL_NAME, prompt="the cat", max_tokens=12, temperature=0, extra_body={"ignore_eos": True})
    prompt_ids = tokenizer.encode("the cat").ids
    from tttv2.serve.runtime import SamplingParams, StopConditions

    from conftest import make_engine

    alone = make_engine(server.model, tokenizer).generate([prompt_ids], SamplingParams(), StopConditions(max_new_tokens=12))[0]
    choice = out.choices[0]
    assert choice.text == alone.text and choice.finish_reason == "length"
    assert out.usage.prompt_tokens == len(prompt_ids) and out.usage.completion_tokens == 12
    assert out.usage.total_tokens == len(prompt_ids) + 12
