"""HTTP load generator for bench_serving.py --http: starts `tttv2 serve` (and, as the
baseline, `transformers serve --continuous-batching`) on one checkpoint, on 127.0.0.1 at
ports the OS picks, and drives each with streamed /v1/completions requests arriving as a
Poisson process at several rates. Reports throughput and TTFT / inter-token latency
percentiles measured by the client (from each request's scheduled arrival)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

WORDS = "the quick brown fox jumps over a lazy dog while seven small birds sing in old green trees".split()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def text_prompts(n: int, lo: int, hi: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))) for _ in range(n)]


def output_lengths(n: int, lo: int, hi: int, seed: int) -> list[int]:
    rng = random.Random(seed + 1)
    return [rng.randint(lo, hi) for _ in range(n)]


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float, log: list[str]) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {''.join(log)[-2000:]}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server not ready after {timeout_s:.0f} s: {''.join(log)[-2000:]}")


def start(cmd: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    log: list[str] = []
    threading.Thread(target=lambda: [log.append(line) for line in proc.stdout], daemon=True).start()
    return proc, log


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return math.nan
    s = sorted(xs)
    k = (len(s) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


async def one_request(
    client, url: str, model: str, prompt: str, max_tokens: int, arrival: float, t0: float
) -> dict:
    await asyncio.sleep(max(0.0, t0 + arrival - time.perf_counter()))
    start = t0 + arrival
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "ignore_eos": True, "stream_options": {"include_usage": True}}  # fmt: skip
    times, usage = [], None
    async with client.stream("POST", f"{url}/v1/completions", json=body) as response:
        if response.status_code != 200:
            return {"error": f"{response.status_code}: {(await response.aread())[:200]!r}"}
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"]
            if chunk.get("choices") and chunk["choices"][0].get("text"):
                times.append(time.perf_counter())
    end = time.perf_counter()
    tokens = usage["completion_tokens"] if usage else len(times)
    return {
        "ttft": (times[0] - start) if times else math.nan,
        "itl": [b - a for a, b in zip(times, times[1:], strict=False)],
        "tokens": tokens,
        "e2e": end - start,
    }


async def load(
    url: str, model: str, prompts: list[str], lengths: list[int], rate: float, seed: int
) -> dict:
    import httpx

    rng = random.Random(seed + 2)
    t, arrivals = 0.0, []
    for _ in prompts:
        arrivals.append(t)
        t += 0 if math.isinf(rate) else rng.expovariate(rate)
    limits = httpx.Limits(
        max_connections=len(prompts) + 4, max_keepalive_connections=len(prompts) + 4
    )
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        t0 = time.perf_counter() + 0.05
        results = await asyncio.gather(
            *(
                one_request(client, url, model, p, n, a, t0)
                for p, n, a in zip(prompts, lengths, arrivals, strict=True)
            )
        )
    errors = [r["error"] for r in results if "error" in r]
    ok = [r for r in results if "error" not in r]
    seconds = max(
        (a + r["e2e"] for a, r in zip(arrivals, results, strict=True) if "error" not in r),
        default=math.nan,
    )
    tokens = sum(r["tokens"] for r in ok)
    ttft = [r["ttft"] * 1000 for r in ok if not math.isnan(r["ttft"])]
    itl = [x * 1000 for r in ok for x in r["itl"]]
    row = {"rate": rate, "requests": len(ok), "errors": len(errors), "output_tokens": tokens, "seconds": seconds,
           "output_tok_s": tokens / seconds if seconds else math.nan}  # fmt: skip
    for q in (50, 90, 99):
        row[f"ttft_p{q}_ms"] = percentile(ttft, q)
        row[f"itl_p{q}_ms"] = percentile(itl, q)
    if errors:
        row["first_error"] = errors[0]
    return row


def print_rows(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(
        f"{'rate':>6} {'ok':>4} {'err':>4} {'tok/s':>8} {'TTFT p50':>9} {'p90':>8} {'p99':>8} {'ITL p50':>8} {'p90':>8} {'p99':>8}  (ms)"
    )
    for r in rows:
        print(f"{r['rate']:>6} {r['requests']:>4} {r['errors']:>4} {r['output_tok_s']:>8.1f} {r['ttft_p50_ms']:>9.1f} "
              f"{r['ttft_p90_ms']:>8.1f} {r['ttft_p99_ms']:>8.1f} {r['itl_p50_ms']:>8.1f} {r['itl_p90_ms']:>8.1f} {r['itl_p99_ms']:>8.1f}")  # fmt: skip
        if r.get("first_error"):
            print(f"       first error: {r['first_error']}")


def run(args) -> dict:
    checkpoint = Path(args.http)
    prompts = text_prompts(args.num_requests, *args.prompt_len, args.seed)
    lengths = output_lengths(args.num_requests, *args.max_new_tokens, args.seed)
    results: dict = {"checkpoint": str(checkpoint)}
    servers = [("tttv2 serve", "tttv2")]
    if not args.no_baseline:
        servers.append(("transformers serve --continuous-batching", "transformers"))
    for title, kind in servers:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        if kind == "tttv2":
            model = "bench"
            cmd = [sys.executable, "-m", "tttv2.cli.main", "serve", "--checkpoint", str(checkpoint), "--port", str(port),
                   "--served-model-name", model, "--dtype", args.dtype, "--max-num-seqs", str(args.max_num_seqs),
                   "--max-queue", str(args.num_requests)]  # fmt: skip
        else:
            exe = shutil.which("transformers") or str(Path(sys.executable).parent / "transformers")
            model = str(checkpoint.resolve())
            cmd = [exe, "serve", "--continuous-batching", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
                   "--dtype", args.dtype, model]  # fmt: skip
        proc, log = start(cmd, env)
        try:
            wait_ready(url, proc, args.startup_timeout, log)
            rows = [
                asyncio.run(load(url, model, prompts, lengths, rate, args.seed))
                for rate in args.rate_list
            ]
            print_rows(
                f"{title} ({checkpoint.name}, {args.dtype}, {args.num_requests} requests, prompts {args.prompt_len[0]}-{args.prompt_len[1]} words, outputs {args.max_new_tokens[0]}-{args.max_new_tokens[1]} tokens):",
                rows,
            )
            results[kind] = rows
        except (RuntimeError, OSError) as exc:
            print(f"\n{title}: could not run: {exc}")
            results[kind] = {"error": str(exc)[-2000:]}
        finally:
            stop(proc)
    return results
