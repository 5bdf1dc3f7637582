"""HTTP load generator for bench_serving.py --http: starts `tttv2 serve` and, as the baseline,
`transformers serve --continuous-batching` on one checkpoint, both on 127.0.0.1 at ports the
OS picks, and drives each with streamed /v1/completions requests arriving as a Poisson
process at several rates. The two servers run side by side and are measured interleaved (at
each rate one, then the other, the order alternating), so load from other processes on the
host falls on both; each idle server's CPU use is printed. Reports throughput and TTFT /
inter-token latency percentiles measured by the client (from each request's scheduled
arrival), and the ratios the serving target is stated in.

The baseline needs ``accelerate`` (part of ``transformers[serving]``), in the workspace's
``bench`` dependency group:

    uv run --group bench python tools/bench/bench_serving.py --http CHECKPOINT ...

It gets the same KV block size, block count and per-step token budget as ``tttv2 serve``'s
workload needs (``--cb-block-size``, ``--cb-num-blocks``, ``--cb-max-batch-tokens``): left to
itself on a CPU it sizes its cache from the host's RAM and attends over all of it each step.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

WORDS = "the quick brown fox jumps over a lazy dog while seven small birds sing in old green trees".split()
BLOCK_SIZE = 16


class BenchError(RuntimeError):
    """A server could not be started or measured; the message is one line for the user."""


@dataclass
class Server:
    title: str
    kind: str
    model: str
    cmd: list[str]
    env: dict[str, str]
    #: extra request fields: tttv2 gets ignore_eos; transformers serve answers 422 to it
    #: (with random weights the end-of-sequence token is one of 49152, rarely drawn)
    extra_body: dict = field(default_factory=dict)
    url: str = ""
    proc: subprocess.Popen | None = None
    log: list[str] = field(default_factory=list)


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


def tail(log: list[str], n: int = 15) -> str:
    return "".join(log[-n:]).rstrip()


def start(server: Server) -> None:
    port = free_port()
    server.url = f"http://127.0.0.1:{port}"
    cmd = [c.replace("{port}", str(port)) for c in server.cmd]
    # Its own session: stop() signals the whole process group, children included.
    server.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env=server.env, start_new_session=True)  # fmt: skip
    threading.Thread(
        target=lambda: [server.log.append(line) for line in server.proc.stdout], daemon=True
    ).start()


def wait_ready(server: Server, timeout_s: float) -> None:
    """Poll GET /health until 200; raise BenchError if the server exits or the time runs out."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise BenchError(
                f"{server.title} exited with status {server.proc.returncode} while starting:\n{tail(server.log)}"
            )
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise BenchError(
        f"{server.title} not ready after {timeout_s:.0f} s (--startup-timeout):\n{tail(server.log)}"
    )


def stop(server: Server) -> None:
    proc = server.proc
    if proc is None or proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), 0 where unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def idle_cpu_percent(servers: list[Server], seconds: float = 3.0) -> dict[str, float]:
    before = {s.kind: cpu_seconds(s.proc.pid) for s in servers}
    time.sleep(seconds)
    return {s.kind: 100 * (cpu_seconds(s.proc.pid) - before[s.kind]) / seconds for s in servers}


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return math.nan
    s = sorted(xs)
    k = (len(s) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


async def one_request(
    client, server: Server, prompt: str, max_tokens: int, arrival: float, t0: float
) -> dict:
    await asyncio.sleep(max(0.0, t0 + arrival - time.perf_counter()))
    start = t0 + arrival
    body = {"model": server.model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}, **server.extra_body}  # fmt: skip
    times, usage = [], None
    try:
        async with client.stream("POST", f"{server.url}/v1/completions", json=body) as response:
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
    except Exception as exc:  # noqa: BLE001 - a failed request is counted, the run goes on
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}
    end = time.perf_counter()
    tokens = usage["completion_tokens"] if usage else len(times)
    return {
        "ttft": (times[0] - start) if times else math.nan,
        "itl": [b - a for a, b in zip(times, times[1:], strict=False)],
        "tokens": tokens,
        "chunks": len(times),
        "e2e": end - start,
    }


async def load(
    server: Server, prompts: list[str], lengths: list[int], rate: float, seed: int, timeout_s: float
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
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        t0 = time.perf_counter() + 0.05
        tasks = [
            asyncio.ensure_future(one_request(client, server, p, n, a, t0))
            for p, n, a in zip(prompts, lengths, arrivals, strict=True)
        ]
        done, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        results = [
            task.result()
            if task in done
            else {"error": f"not finished within {timeout_s:.0f} s (--request-timeout)"}
            for task in tasks
        ]
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
           "output_tok_s": tokens / seconds if seconds else math.nan,
           "tokens_per_chunk": tokens / max(1, sum(r["chunks"] for r in ok))}  # fmt: skip
    for q in (50, 90, 99):
        row[f"ttft_p{q}_ms"] = percentile(ttft, q)
        row[f"itl_p{q}_ms"] = percentile(itl, q)
    if errors:
        row["first_error"] = errors[0]
    return row


def print_rows(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(
        f"{'rate':>6} {'ok':>4} {'err':>4} {'tokens':>6} {'tok/s':>8} {'TTFT p50':>9} {'p90':>8} {'p99':>8} {'ITL p50':>8} {'p90':>8} {'p99':>8} {'tok/chunk':>9}  (ms)"
    )
    for r in rows:
        print(f"{r['rate']:>6} {r['requests']:>4} {r['errors']:>4} {r['output_tokens']:>6} {r['output_tok_s']:>8.1f} {r['ttft_p50_ms']:>9.1f} "
              f"{r['ttft_p90_ms']:>8.1f} {r['ttft_p99_ms']:>8.1f} {r['itl_p50_ms']:>8.1f} {r['itl_p90_ms']:>8.1f} "
              f"{r['itl_p99_ms']:>8.1f} {r['tokens_per_chunk']:>9.2f}")  # fmt: skip
        if r.get("first_error"):
            print(f"       first error: {r['first_error']}")


def _or_inf(x: float) -> float:
    return math.inf if math.isnan(x) else x


def compare(ours: list[dict], base: list[dict]) -> dict:
    """The serving target's two ratios: throughput at saturation (the highest rate) and p50
    TTFT at every rate."""
    print("\ntttv2 serve vs transformers serve --continuous-batching:")
    out: dict = {"ttft_p50_lower": {}}
    for o, b in zip(ours, base, strict=True):
        # a server that finished no request has no TTFT: every one of its requests waited
        # longer than the timeout, which counts as higher than any TTFT measured
        lower = _or_inf(o["ttft_p50_ms"]) < _or_inf(b["ttft_p50_ms"])
        out["ttft_p50_lower"][str(o["rate"])] = lower
        print(f"  rate {o['rate']:>5}: throughput {o['output_tok_s'] / b['output_tok_s']:.2f}x, p50 TTFT "
              f"{o['ttft_p50_ms']:.0f} vs {b['ttft_p50_ms']:.0f} ms ({'lower' if lower else 'NOT lower'})")  # fmt: skip
    top = max(range(len(ours)), key=lambda i: ours[i]["rate"])
    out["saturation_throughput_ratio"] = ours[top]["output_tok_s"] / base[top]["output_tok_s"]
    met = out["saturation_throughput_ratio"] >= 3 and all(out["ttft_p50_lower"].values())
    print(f"  throughput at saturation (rate {ours[top]['rate']}): {out['saturation_throughput_ratio']:.2f}x "
          f"(target >= 3x); p50 TTFT lower at every rate: {'yes' if all(out['ttft_p50_lower'].values()) else 'no'}; "
          f"target {'met' if met else 'NOT met'}")  # fmt: skip
    out["target_met"] = met
    return out


def servers_for(args, checkpoint: Path, hf_home: str) -> list[Server]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": hf_home,
           "HF_HUB_CACHE": str(Path(hf_home) / "hub")}  # fmt: skip
    per_request = -(
        -(2 * args.prompt_len[1] + 2 + args.max_new_tokens[1]) // BLOCK_SIZE
    )  # ~2 tokens a word, BOS
    servers = [
        Server(
            "tttv2 serve",
            "tttv2",
            "bench",
            [
                sys.executable,
                "-m",
                "tttv2.cli.main",
                "serve",
                "--checkpoint",
                str(checkpoint),
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--served-model-name",
                "bench",
                "--dtype",
                args.dtype,
                "--device",
                "cpu",
                "--max-num-seqs",
                str(args.max_num_seqs),
                "--max-queue",
                str(args.num_requests),
                "--max-num-batched-tokens",
                str(args.max_batched_tokens),
                "--max-model-len",
                str(per_request * BLOCK_SIZE),
            ],
            env,
            {"ignore_eos": True},
        )  # fmt: skip
    ]
    if not args.no_baseline:
        servers.append(Server("transformers serve --continuous-batching", "transformers", str(checkpoint), [
            sys.executable, "-m", "transformers.cli.transformers", "serve", "--continuous-batching",
            "--host", "127.0.0.1", "--port", "{port}", "--device", "cpu", "--dtype", args.dtype,
            "--cb-block-size", str(BLOCK_SIZE), "--cb-num-blocks", str(per_request * args.num_requests),
            "--cb-max-batch-tokens", str(args.max_batched_tokens), str(checkpoint)], env))  # fmt: skip
    return servers


def preflight(args, checkpoint: Path) -> None:
    for name in ("config.json", "tokenizer.json"):
        if not (checkpoint / name).is_file():
            raise BenchError(
                f"{checkpoint} has no {name}: make one with "
                "`uv run python tools/bench/make_checkpoint.py smollm2-135m --tokenizer`"
            )
    if not args.no_baseline:
        missing = [
            m
            for m in ("accelerate", "fastapi", "uvicorn", "openai")
            if importlib.util.find_spec(m) is None
        ]
        if missing:
            raise BenchError(
                f"transformers serve (the baseline) needs {', '.join(missing)}, not installed here: run with "
                "`uv run --group bench python tools/bench/bench_serving.py --http ...`, or pass --no-baseline"
            )


def _exit_on_signal(signum: int, frame) -> None:
    raise SystemExit(128 + signum)


def run(args) -> dict:
    checkpoint = Path(args.http).resolve()
    preflight(args, checkpoint)
    prompts = text_prompts(args.num_requests, *args.prompt_len, args.seed)
    lengths = output_lengths(args.num_requests, *args.max_new_tokens, args.seed)
    results: dict = {"checkpoint": str(checkpoint)}
    # SIGTERM / SIGHUP end the run through the finally below (the servers run in sessions of
    # their own, so nothing else would stop them)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    with tempfile.TemporaryDirectory(prefix="tttv2-bench-hf-home-") as hf_home:
        servers = servers_for(args, checkpoint, hf_home)
        try:
            for server in servers:
                start(server)
            for server in servers:
                wait_ready(server, args.startup_timeout)
                warm = asyncio.run(load(server, prompts[:2], [4, 4], math.inf, args.seed,
                                        args.request_timeout))  # fmt: skip
                if warm["errors"]:
                    raise BenchError(
                        f"{server.title}: warm-up request failed: {warm['first_error']}\n{tail(server.log)}"
                    )
            idle = idle_cpu_percent(servers)
            print(
                "idle CPU use while waiting for requests: "
                + ", ".join(f"{s.title} {idle[s.kind]:.0f}%" for s in servers)
            )
            results["idle_cpu_percent"] = idle
            rows: dict[str, list[dict]] = {s.kind: [] for s in servers}
            for i, rate in enumerate(args.rate_list):
                for server in servers if i % 2 == 0 else servers[::-1]:
                    rows[server.kind].append(asyncio.run(
                        load(server, prompts, lengths, rate, args.seed, args.request_timeout)))  # fmt: skip
                    r = rows[server.kind][-1]
                    if server.proc.poll() is not None:
                        raise BenchError(f"{server.title} exited with status {server.proc.returncode} during rate {rate} "
                                         f"(a negative status is the signal; -9 may be the OOM killer):\n{tail(server.log)}")  # fmt: skip
                    print(f"  {server.title}, rate {rate}: {r['output_tok_s']:.1f} tok/s, p50 TTFT {r['ttft_p50_ms']:.0f} ms, "
                          f"{r['errors']} errors{' (first: ' + r['first_error'] + ')' if r['errors'] else ''}", flush=True)  # fmt: skip
        finally:
            for server in servers:
                stop(server)
    shape = (f"{checkpoint.name}, {args.dtype}, cpu, {args.num_requests} requests, prompts {args.prompt_len[0]}-"
             f"{args.prompt_len[1]} words, outputs {args.max_new_tokens[0]}-{args.max_new_tokens[1]} tokens")  # fmt: skip
    for server in servers:
        print_rows(f"{server.title} ({shape}):", rows[server.kind])
        results[server.kind] = rows[server.kind]
    if "transformers" in rows:
        results["comparison"] = compare(rows["tttv2"], rows["transformers"])
    return results
