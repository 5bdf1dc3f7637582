"""Many clients at once on a KV pool too small for all of them, and clients that leave."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import torch
from conftest import MODEL_NAME, make_engine

from tttv2.serve.runtime import SamplingParams, StopConditions

NUM_REQUESTS = 64


async def _stream_one(
    client: openai.AsyncOpenAI, prompt: list[int], max_tokens: int
) -> tuple[str, int, str]:
    stream = await client.completions.create(
        model=MODEL_NAME,
        prompt=prompt,
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    pieces, finish = [], None
    async for chunk in stream:
        pieces.append(chunk.choices[0].text)
        finish = chunk.choices[0].finish_reason or finish
    return "".join(pieces), len(pieces), finish


def test_64_concurrent_streams_on_a_small_kv_pool_match_each_request_alone(
    server, tokenizer
) -> None:
    pool_tokens = (
        server.served.engine.runner.blocks.num_blocks
        * server.served.engine.runner.blocks.block_size
    )
    g = torch.Generator().manual_seed(3)
    vocab = tokenizer.get_vocab_size()
    prompts = [
        torch.randint(
            2, vocab, (int(torch.randint(3, 40, (1,), generator=g)),), generator=g
        ).tolist()
        for _ in range(NUM_REQUESTS)
    ]
    lengths = [int(torch.randint(1, 30, (1,), generator=g)) for _ in range(NUM_REQUESTS)]
    assert (
        sum(len(p) + n for p, n in zip(prompts, lengths, strict=True)) > 4 * pool_tokens
    )  # far too small for all
    before = server.metrics().get("tttv2_preemptions_total", 0.0)

    async def run_all():
        client = openai.AsyncOpenAI(
            base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120
        )
        async with client:
            return await asyncio.gather(
                *(_stream_one(client, p, n) for p, n in zip(prompts, lengths, strict=True))
            )

    results = asyncio.run(run_all())
    assert server.metrics()["tttv2_preemptions_total"] > before  # the pool really ran out
    for prompt, n, (text, count, finish) in zip(prompts, lengths, results, strict=True):
        alone = make_engine(server.model, tokenizer).generate(
            [prompt], SamplingParams(), StopConditions(max_new_tokens=n)
        )[0]
        assert (text, count, finish) == (alone.text, n, "length")
    metrics = server.metrics()
    assert metrics["tttv2_kv_blocks_used"] == 0 and metrics["tttv2_requests_running"] == 0


def _wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_a_client_that_disconnects_has_its_request_aborted_and_blocks_freed(server) -> None:
    server.model.delay_s = 0.03  # 200 tokens would take > 6 s
    try:
        aborted_before = server.metrics().get(
            'tttv2_requests_finished_total{finish_reason="abort"}', 0.0
        )
        body = {
            "model": MODEL_NAME,
            "prompt": "the cat",
            "max_tokens": 200,
            "temperature": 0,
            "stream": True,
            "ignore_eos": True,
        }
        with httpx.Client(timeout=30) as http:
            with http.stream("POST", f"{server.base_url}/v1/completions", json=body) as response:
                assert response.status_code == 200
                lines = response.iter_lines()
                got = [line for _, line in zip(range(6), lines, strict=False)]
                assert sum(line.startswith("data: {") for line in got) >= 2
                assert server.metrics()["tttv2_kv_blocks_used"] > 0
            # leaving the block closes the connection mid-stream
        freed = _wait_for(lambda: server.metrics()["tttv2_kv_blocks_used"] == 0, 3.0)
        metrics = server.metrics()
        assert freed, metrics
        assert metrics['tttv2_requests_finished_total{finish_reason="abort"}'] == aborted_before + 1
        assert metrics["tttv2_requests_running"] == 0
    finally:
        server.model.delay_s = 0.0
