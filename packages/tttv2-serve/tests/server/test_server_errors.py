"""Every class of invalid request answers 400 with an OpenAI-shaped body the official
client parses (never a 500); an API key guards every route but /health; a full queue
answers 429 with Retry-After; a draining server answers 503 and aborts what outlives
its timeout."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest
from conftest import MODEL_NAME, serving

GOOD = {"model": MODEL_NAME, "prompt": "the cat", "max_tokens": 4}

INVALID_COMPLETIONS = {
    "unknown model": ({**GOOD, "model": "gpt-4"}, "model"),
    "negative max_tokens": ({**GOOD, "max_tokens": -1}, "max_tokens"),
    "max_tokens of the wrong type": ({**GOOD, "max_tokens": "ten"}, "max_tokens"),
    "temperature out of range": ({**GOOD, "temperature": 3.5}, "temperature"),
    "temperature of the wrong type": ({**GOOD, "temperature": "hot"}, "temperature"),
    "top_p of zero": ({**GOOD, "top_p": 0}, "top_p"),
    "n of zero": ({**GOOD, "n": 0}, "n"),
    "stop of the wrong type": ({**GOOD, "stop": 5}, "stop"),
    "too many logprobs": ({**GOOD, "logprobs": 50}, "logprobs"),
    "missing prompt": ({"model": MODEL_NAME}, "prompt"),
    "empty prompt": ({**GOOD, "prompt": ""}, "prompt"),
    "token id outside the vocabulary": ({**GOOD, "prompt": [1, 99999]}, "prompt"),
    "prompt longer than the context": ({**GOOD, "prompt": [5] * 5000}, "prompt"),
    "seed of the wrong type": ({**GOOD, "seed": 1.5}, "seed"),
    "stream of the wrong type": ({**GOOD, "stream": "yes"}, "stream"),
}

INVALID_CHAT = {
    "no messages": ({"model": MODEL_NAME, "messages": []}, "messages"),
    "message without a role": (
        {"model": MODEL_NAME, "messages": [{"content": "hi"}]},
        "messages.0.role",
    ),
    "messages of the wrong type": ({"model": MODEL_NAME, "messages": "hi"}, "messages"),
    "top_logprobs without logprobs": (
        {"model": MODEL_NAME, "messages": [{"role": "user", "content": "hi"}], "top_logprobs": 2},
        "top_logprobs",
    ),
    "image content": (
        {
            "model": MODEL_NAME,
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
            ],
        },
        "messages.0.content",
    ),
}


def _assert_bad_request(exc: openai.BadRequestError, param: str) -> None:
    assert exc.status_code == 400
    error = exc.body  # the client parsed {"error": {...}} and hands out its inside
    assert isinstance(error, dict) and error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] == param, error


@pytest.mark.parametrize("case", list(INVALID_COMPLETIONS))
def test_invalid_completion_requests_are_400(server, client, case) -> None:
    body, param = INVALID_COMPLETIONS[case]
    with pytest.raises(openai.BadRequestError) as info:
        client.post("/completions", body=body, cast_to=object)
    _assert_bad_request(info.value, param)


@pytest.mark.parametrize("case", list(INVALID_CHAT))
def test_invalid_chat_requests_are_400(server, client, case) -> None:
    body, param = INVALID_CHAT[case]
    with pytest.raises(openai.BadRequestError) as info:
        client.post("/chat/completions", body=body, cast_to=object)
    _assert_bad_request(info.value, param)


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", b'"a string"'])
def test_malformed_bodies_are_400(server, raw) -> None:
    response = httpx.post(
        f"{server.base_url}/v1/completions",
        content=raw,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400, response.text
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_a_template_that_fails_is_400_and_the_server_keeps_serving(tokenizer) -> None:
    with serving(tokenizer) as running:
        from tttv2.serve.server import ChatTemplate

        running.served.chat_template = ChatTemplate("{{ raise_exception('only user messages') }}")
        client = openai.OpenAI(
            base_url=f"{running.base_url}/v1", api_key="x", max_retries=0, timeout=30
        )
        with pytest.raises(openai.BadRequestError, match="only user messages"):
            client.chat.completions.create(
                model=MODEL_NAME, messages=[{"role": "user", "content": "hi"}]
            )
        assert (
            client.completions.create(model=MODEL_NAME, prompt="hi", max_tokens=2)
            .choices[0]
            .finish_reason
        )


def test_api_key_guards_every_route_but_health(tokenizer) -> None:
    with serving(tokenizer, api_key="sesame") as running:
        url = running.base_url
        wrong = openai.OpenAI(base_url=f"{url}/v1", api_key="guess", max_retries=0, timeout=30)
        with pytest.raises(openai.AuthenticationError) as info:
            wrong.completions.create(model=MODEL_NAME, prompt="hi", max_tokens=2)
        assert info.value.status_code == 401 and info.value.body["code"] == "invalid_api_key"
        for path in ("/v1/models", "/metrics", "/v1/chat/completions"):
            assert httpx.get(f"{url}{path}", timeout=10).status_code == 401, path
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200
        right = openai.OpenAI(base_url=f"{url}/v1", api_key="sesame", max_retries=0, timeout=30)
        assert (
            right.completions.create(
                model=MODEL_NAME, prompt="hi", max_tokens=2
            ).usage.completion_tokens
            >= 1
        )
        assert running.metrics()["tttv2_requests_running"] == 0


def test_a_full_queue_answers_429_with_retry_after(tokenizer) -> None:
    with serving(tokenizer, max_queue=0, max_num_seqs=1) as running:
        running.model.delay_s = 0.05
        client = openai.OpenAI(
            base_url=f"{running.base_url}/v1", api_key="x", max_retries=0, timeout=30
        )
        first = threading.Thread(
            target=client.completions.create,
            kwargs={
                "model": MODEL_NAME,
                "prompt": "hi",
                "max_tokens": 40,
                "extra_body": {"ignore_eos": True},
            },
        )
        first.start()
        deadline = time.monotonic() + 10
        while running.metrics()["tttv2_requests_running"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(openai.RateLimitError) as info:
            client.completions.create(model=MODEL_NAME, prompt="hi", max_tokens=2)
        assert (
            info.value.status_code == 429 and int(info.value.response.headers["Retry-After"]) >= 1
        )
        assert info.value.body["code"] == "queue_full"
        assert running.metrics()["tttv2_requests_rejected_total"] == 1
        running.model.delay_s = 0.0
        first.join(timeout=30)
        assert client.completions.create(model=MODEL_NAME, prompt="hi", max_tokens=2).choices


def test_a_draining_server_answers_503_and_aborts_what_outlives_the_timeout(tokenizer) -> None:
    """What SIGTERM starts (the lifespan calls ``EngineLoop.shutdown``): /health and new
    requests answer 503 ``shutting_down``; a stream still running when the timeout ends gets
    an ``aborted`` error event, and its KV blocks are freed."""
    with serving(tokenizer) as running:
        engine_loop = running.app.config.app.state.engine_loop
        running.model.delay_s = 0.03  # 200 tokens would take > 6 s
        body = {**GOOD, "max_tokens": 200, "stream": True, "ignore_eos": True}
        aborted: list[int] = []
        with httpx.Client(timeout=30) as http:
            with http.stream("POST", f"{running.base_url}/v1/completions", json=body) as response:
                assert response.status_code == 200
                lines = response.iter_lines()
                first = next(line for line in lines if line)
                assert first.startswith("data: {")
                assert running.metrics()["tttv2_kv_blocks_used"] > 0
                drain = threading.Thread(target=lambda: aborted.append(engine_loop.shutdown(1.0)))
                drain.start()
                deadline = time.monotonic() + 10
                while engine_loop.admitting and time.monotonic() < deadline:
                    time.sleep(0.01)
                health = http.get(f"{running.base_url}/health")
                assert health.status_code == 503 and health.json() == {"status": "shutting_down"}
                refused = http.post(f"{running.base_url}/v1/completions", json=GOOD)
                assert refused.status_code == 503, refused.text
                assert refused.json()["error"]["code"] == "shutting_down"
                rest = [line for line in lines if line]
            drain.join(timeout=15)
        assert aborted == [1]
        assert rest[-1] == "data: [DONE]"
        last = json.loads(rest[-2][len("data: ") :])
        assert last["error"]["code"] == "aborted", last
        assert len(rest) < 200  # cut, not drained to the end
        metrics = running.metrics()
        assert metrics["tttv2_kv_blocks_used"] == 0, metrics
        assert metrics["tttv2_requests_running"] == 0
