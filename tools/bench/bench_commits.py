"""Per-step decode time of two checkouts of this repository, step by step in one run.

Answers "is this change slower?" for the whole decode step users run (``LLMEngine.step``:
scheduling, the model pass, sampling) when a change moves code around rather than changing a
kernel, and whole-run numbers are too noisy to tell a few percent.

Each checkout (``--before DIR``, ``--after DIR``: a clone or worktree whose ``.venv`` was
made by ``uv sync`` in it) runs this file as a child process under its own interpreter: it
loads ``--checkpoint`` with tttv2-cli's loader (``tttv2.cli.loading.load``, decode captured as
``tttv2 bench`` does), prefills ``--batch`` prompts of ``--prompt-len`` random tokens in an
``LLMEngine`` over a paged KV cache planned by tttv2-hw, runs ``--warmup`` decode steps, then
waits. The parent asks the two children for one decode step each, in turn, ``--steps`` times
(which goes first alternates every step), with ``--gap-ms`` of idle time before each step so
the other process's OpenMP threads have stopped spinning. Each child times its own step
(``time.perf_counter`` around ``engine.step()``, in inference mode held across the steps as
``LLMEngine.generate`` holds it). Both sequences grow by one token per step,
so step ``i`` of both sides has the same context length.

All of that is one round; ``--rounds`` rounds start both children afresh each time (which
starts first alternates), because two processes' memory placement differs from run to run
by a few percent, more than the steps of one pair vary. Printed: each round's median of the
per-step ratios after/before, the median of those (above 1: the after checkout is slower) and
their spread, and per side the median ms per step split into the model's forward (hooks on
the stack module) and the rest of the engine step. Nothing here asserts
a time. Both children must fit in memory at once (two copies of the weights).

    git worktree add /tmp/before <commit> && (cd /tmp/before && uv sync)
    uv run python tools/bench/bench_commits.py --before /tmp/before --after . \\
        --checkpoint /tmp/tttv2-bench-checkpoints/smollm2-135m --rounds 4

The child side uses only what both checkouts have (``tttv2.cli.loading.load``,
``tttv2.cli.kv_pool.loaded_kv_pool`` and ``LLMEngine`` from ``tttv2.serve.runtime``, or from
``tttv2.core.runtime`` before the runtime moved), so checkouts from before that move work too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any


def _child(args: argparse.Namespace) -> int:
    """Load, prefill, warm up, then answer ``step`` lines with one timed decode step each."""
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # anything the library prints stays off the protocol stream
    import torch

    from tttv2.cli.kv_pool import loaded_kv_pool
    from tttv2.cli.loading import load

    try:
        from tttv2.serve.runtime import LLMEngine, SamplingParams, StopConditions
    except ImportError:  # checkouts from before the runtime moved out of tttv2-core
        from tttv2.core.runtime import (  # type: ignore[no-redef]
            LLMEngine,
            SamplingParams,
            StopConditions,
        )

    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    loaded = load(Path(args.checkpoint), args.dtype, device, capture_decode=True)
    total = args.prompt_len + args.warmup + args.steps + 2
    pool = loaded_kv_pool(loaded, device, seq_len=total, num_seqs=args.batch)
    engine = LLMEngine(
        loaded.model,
        num_blocks=pool.num_blocks,
        block_size=pool.block_size,
        max_seq_len=loaded.max_context,
        max_num_batched_tokens=args.batch * args.prompt_len,
        max_num_seqs=args.batch,
        device=device,
        vocab_size=loaded.spec.vocab_size,
    )
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(0, loaded.spec.vocab_size, (args.batch, args.prompt_len), generator=g)
    stop = StopConditions(max_new_tokens=args.warmup + args.steps + 1)  # never ends early
    for row in prompts:
        engine.add_request(row.tolist(), SamplingParams(), stop)
    engine.step()  # prefill
    for _ in range(args.warmup):
        engine.step()
    path = getattr(getattr(loaded.model, "decode_path", None), "kind", None)
    forward: list[float] = []  # the model's forward inside the step (hooks on the stack module)
    loaded.model.register_forward_pre_hook(lambda *_: forward.append(time.perf_counter()))
    loaded.model.register_forward_hook(
        lambda *_: forward.append(time.perf_counter() - forward.pop())
    )
    protocol.write(json.dumps({"ready": True, "decode_path": path}) + "\n")
    # held across the timed steps, as LLMEngine.generate and the server's engine thread hold it
    with torch.inference_mode():
        for line in sys.stdin:
            if line.strip() != "step":
                break
            start = time.perf_counter()
            forward.clear()
            events = engine.step()
            elapsed = time.perf_counter() - start
            reply = {"s": elapsed, "forward_s": sum(forward), "tokens": len(events)}
            protocol.write(json.dumps(reply) + "\n")
    return 0


class _Side:
    def __init__(self, name: str, checkout: Path, args: argparse.Namespace) -> None:
        python = checkout / ".venv" / "bin" / "python"
        if not python.exists():
            raise SystemExit(f"{name}: {python} not found (run `uv sync` in {checkout})")
        cmd = [str(python), str(Path(__file__).resolve()), "--child", *_child_argv(args)]
        self.name = name
        self.proc = subprocess.Popen(
            cmd, cwd=checkout, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.info = self._read()
        self.times: list[float] = []
        self.forward: list[float] = []

    def _read(self) -> dict[str, Any]:
        out: IO[str] = self.proc.stdout  # type: ignore[assignment]
        line = out.readline()
        if not line:
            raise SystemExit(
                f"{self.name}: the child exited (status {self.proc.wait()}); see its stderr above"
            )
        return json.loads(line)

    def step(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("step\n")
        self.proc.stdin.flush()
        reply = self._read()
        self.times.append(reply["s"])
        self.forward.append(reply["forward_s"])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _child_argv(args: argparse.Namespace) -> list[str]:
    return [
        "--checkpoint", str(Path(args.checkpoint).resolve()),
        "--dtype", args.dtype,
        "--batch", str(args.batch),
        "--prompt-len", str(args.prompt_len),
        "--steps", str(args.steps),
        "--warmup", str(args.warmup),
        "--threads", str(args.threads),
    ]  # fmt: skip


def _host_line(threads: int) -> str:
    from tttv2.hw.device.cpu import detect_cpu

    cpu = detect_cpu()
    return (
        f"host: {cpu.model_name or 'unknown CPU'}, {cpu.usable_cores} usable cores, "
        f"ISA {'/'.join(cpu.isa)}, {threads} threads per side, "
        f"load average {os.getloadavg()[0]:.1f}"
    )


def _round(args: argparse.Namespace, r: int) -> tuple[_Side, _Side]:
    """One round: both children started afresh (their own weights and cache memory), then
    ``--steps`` paired steps; which child starts and which steps first alternate."""
    order = [("before", args.before), ("after", args.after)]
    started = {
        name: _Side(name, Path(path).resolve(), args) for name, path in order[:: 1 - 2 * (r % 2)]
    }
    before, after = started["before"], started["after"]
    if r == 0:
        print(f"before: {args.before} (decode path {before.info['decode_path']})")
        print(f"after:  {args.after} (decode path {after.info['decode_path']})")
    try:
        for i in range(args.steps):
            for side in (before, after) if i % 2 == 0 else (after, before):
                time.sleep(args.gap_ms / 1000)
                side.step()
    finally:
        before.close()
        after.close()
    return before, after


def _parent(args: argparse.Namespace) -> int:
    print(_host_line(args.threads))
    times: dict[str, list[float]] = {
        "before": [],
        "after": [],
        "before_forward": [],
        "after_forward": [],
    }
    round_ratios = []
    for r in range(args.rounds):
        before, after = _round(args, r)
        ratios = [a / b for a, b in zip(after.times, before.times, strict=True)]
        round_ratios.append(statistics.median(ratios))
        print(
            f"  round {r + 1}/{args.rounds}: median ratio {round_ratios[-1]:.3f} "
            f"(before {statistics.median(before.times) * 1e3:.2f}, after {statistics.median(after.times) * 1e3:.2f} ms/step)"
        )
        for side in (before, after):
            times[side.name] += side.times
            times[side.name + "_forward"] += side.forward
    for name in ("before", "after"):
        med = statistics.median(times[name])
        fwd = statistics.median(times[name + "_forward"])
        print(
            f"{name:<7} median {med * 1e3:7.2f} ms/step  {args.batch / med:8.1f} tok/s  "
            f"(model forward {fwd * 1e3:.2f} ms, the rest of the engine step {(med - fwd) * 1e3:.2f} ms)"
        )
    spread = f"{min(round_ratios):.3f}-{max(round_ratios):.3f}"
    print(
        f"after/before per-step time: median of the rounds' ratios {statistics.median(round_ratios):.3f} "
        f"(rounds {spread}; above 1 = after is slower), {args.rounds} rounds x {args.steps} paired steps, "
        f"batch {args.batch}, prompt {args.prompt_len}, {args.dtype}"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({**times, "round_ratios": round_ratios, "args": vars(args)}, indent=1)
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", help="checkout measured as the baseline (has .venv)")
    parser.add_argument("--after", help="checkout measured against it (has .venv)")
    parser.add_argument("--checkpoint", required=True, help="Hugging Face checkpoint folder")
    parser.add_argument(
        "--dtype", default="bfloat16", help="as tttv2 bench --dtype (default: bfloat16)"
    )
    parser.add_argument(
        "--batch", type=int, default=1, help="sequences decoded per step (default: 1)"
    )
    parser.add_argument("--prompt-len", type=int, default=128, help="prompt tokens (default: 128)")
    parser.add_argument(
        "--steps", type=int, default=150, help="paired decode steps per round (default: 150)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="rounds, each with both children started afresh: the spread between rounds is the "
        "run-to-run noise that one pair of processes cannot show (default: 4)",
    )
    parser.add_argument("--warmup", type=int, default=8, help="untimed decode steps (default: 8)")
    parser.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="torch threads of each side (default: the cores this process may use)",
    )
    parser.add_argument(
        "--gap-ms", type=float, default=20.0, help="idle time before each step (default: 20)"
    )
    parser.add_argument("--json", help="also write every step's seconds to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)
    if not (args.before and args.after):
        parser.error("--before and --after are required")
    for flag, value in (
        ("--batch", args.batch),
        ("--prompt-len", args.prompt_len),
        ("--steps", args.steps),
        ("--rounds", args.rounds),
    ):
        if value < 1:
            parser.error(f"{flag} must be at least 1, got {value}")
    return _parent(args)


if __name__ == "__main__":
    sys.exit(main())
