"""Composition cost step by step: ours against the hand-written model, turn by turn.

``bench_model.py`` times each contender's whole decode test in turn, seconds apart; on a
shared host whose speed swings 10-20% from one phase to the next, a 5% composition cost
(target 4 of issue 10) drowns in that. Here the two sides take turns every decode step,
the order alternating (ours first on even steps, hand first on odd ones), on the same
checkpoint, prompts and decode inputs, so each pair of steps sees the same machine:

* ``ours-loop``: ``ModelRunner.forward`` and a greedy pick, the model built from blocks
  and strategies with its paged-cache bookkeeping (``bench_model.py``'s ours-loop);
* ``ours``: one ``LLMEngine.step`` (scheduler, sampler, stop checks on top), as
  ``tttv2 bench`` drives it;
* ``hand``: ``handwritten_llama.py``, the single-file model on the same kernels.

Each of ours-loop and ours is measured in its own phase against hand (a model serves one
paged cache at a time without re-binding its fused decode). Reported per batch size and
phase: both sides' median step time and the median over steps of hand's time over ours'
(>= 0.95 is within 5% of hand-written) with its quartiles. ours-loop and hand both pick
their greedy token every step but are fed the same random tokens, so their work stays
identical even where a near-tie would send two greedy paths apart; how often their picks
agree is reported (a bf16 pick can differ on a near-tie, the two prefills rounding
differently). Nothing asserts a time.

    uv run python tools/bench/bench_composition.py                    # smollm2-135m bf16, batch 1 and 8
    uv run python tools/bench/bench_composition.py --shape llama-3.2-1b --steps 30
    uv run python tools/bench/bench_composition.py --checkpoint DIR --dtype float32 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import CPU, DTYPES, SHAPES, Hand, Ours, checkpoint, prompts  # noqa: E402

from tttv2.cli.kv_pool import loaded_kv_pool  # noqa: E402
from tttv2.cli.throughput import bench_engine  # noqa: E402
from tttv2.core.modes import ExecutionMode  # noqa: E402
from tttv2.serve.runtime import Chunk, ModelRunner, SamplingParams, StopConditions, greedy_tokens  # noqa: E402
from tttv2.serve.runtime.engine import joined_rows  # noqa: E402

Step = Callable[[], list[int]]


def ours_loop(ours: Ours, batch: list[list[int]], feed: list[list[int]]) -> Step:
    """Prefill ``batch`` (untimed) and return one decode step of ``ModelRunner``: the
    next column of ``feed`` in, the greedy picks out."""
    pool = loaded_kv_pool(
        ours.loaded, CPU, seq_len=len(batch[0]) + len(feed[0]), num_seqs=len(batch)
    )
    runner = ModelRunner(
        ours.loaded.model, pool.num_blocks, pool.block_size, ours.loaded.max_context, device=CPU
    )
    greedy_tokens(
        joined_rows(
            runner.forward([Chunk(i, p) for i, p in enumerate(batch)], ExecutionMode.PREFILL)
        )
    )
    column = iter(range(len(feed[0])))

    def step() -> list[int]:
        j = next(column)
        logits = runner.forward(
            [Chunk(i, [row[j]]) for i, row in enumerate(feed)], ExecutionMode.DECODE
        )
        return greedy_tokens(joined_rows(logits))

    return step


def ours_engine(ours: Ours, batch: list[list[int]], feed: list[list[int]]) -> Step:
    """Prefill ``batch`` through an engine step (untimed) and return one engine step (the
    engine feeds its own greedy picks back: same work per step)."""
    steps = len(feed[0])
    engine = bench_engine(ours.loaded, len(batch), len(batch[0]), steps + 1, CPU)
    for prompt in batch:
        engine.add_request(prompt, SamplingParams(), StopConditions(max_new_tokens=steps + 1))
    engine.step()

    def step() -> list[int]:
        engine.step()
        return []

    return step


def hand_loop(hand: Hand, batch: list[list[int]], feed: list[list[int]]) -> Step:
    """Prefill ``batch`` (untimed) and return one decode step of the hand-written model:
    the next column of ``feed`` in, the greedy picks out."""
    ids = torch.tensor(batch)
    greedy_tokens(hand.forward(ids, 0))
    columns, pos = iter(torch.tensor(feed).T), ids.shape[1]

    def step() -> list[int]:
        nonlocal pos
        tokens = greedy_tokens(hand.forward(next(columns).view(-1, 1), pos))
        pos += 1
        return tokens

    return step


def take_turns(ours: Step, hand: Step, steps: int) -> dict[str, Any]:
    """Time ``steps`` steps of each side, alternating which goes first."""
    ours_s, hand_s, agree = [], [], 0
    for i in range(steps):
        order = ((ours, ours_s), (hand, hand_s)) if i % 2 == 0 else ((hand, hand_s), (ours, ours_s))
        picked = []
        for fn, times in order:
            start = time.perf_counter()
            picked.append(fn())
            times.append(time.perf_counter() - start)
        agree += picked[0] == picked[1]
    ratios = [h / o for h, o in zip(hand_s, ours_s, strict=True)]
    q1, median, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
    return {
        "ours_ms": 1e3 * statistics.median(ours_s),
        "hand_ms": 1e3 * statistics.median(hand_s),
        "ratio_median": median,  # hand's step time over ours': ours' speed relative to hand
        "ratio_quartiles": [q1, q3],
        "ratio_of_sums": sum(hand_s) / sum(ours_s),
        "steps_with_same_picks": agree,
        "steps": steps,
    }


def measure(folder: Path, dtype: torch.dtype, batches: Sequence[int], prompt_len: int, steps: int,
            capture: bool = True) -> dict[str, Any]:  # fmt: skip
    """Both phases (ours-loop, ours) for every batch size, against the hand-written model."""
    vocab = json.loads((folder / "config.json").read_text())["vocab_size"]
    ours = Ours(folder, dtype, compile_decode=False, capture=capture)
    hand = Hand(folder, dtype, prompt_len + steps + 8, compile_decode=False)
    warm = 2  # untimed first steps: lazy binding, caches
    results: dict[str, Any] = {}
    # inference mode held across the steps, as LLMEngine.generate and the server's loop hold it
    with torch.inference_mode():
        for batch in batches:
            data = prompts(batch, prompt_len, vocab, seed=batch)
            feed = prompts(batch, warm + steps, vocab, seed=100 + batch)
            for name, make in (("ours-loop", ours_loop), ("ours", ours_engine)):
                ours_step, hand_step = make(ours, data, feed), hand_loop(hand, data, feed)
                take_turns(ours_step, hand_step, warm)
                result = take_turns(ours_step, hand_step, steps)
                if name == "ours":
                    result.pop("steps_with_same_picks")  # the engine's tokens stay in its outputs
                results[f"b{batch} {name}"] = result
                _report(f"b{batch} {name}", result)
    return results


def _report(label: str, r: dict[str, Any]) -> None:
    same = (
        f", same greedy picks in {r['steps_with_same_picks']}/{r['steps']} steps"
        if "steps_with_same_picks" in r
        else ""
    )
    print(f"{label:14s} ours {r['ours_ms']:8.2f} ms  hand {r['hand_ms']:8.2f} ms  per-step hand/ours median "
          f"{r['ratio_median']:.3f} (quartiles {r['ratio_quartiles'][0]:.3f}-{r['ratio_quartiles'][1]:.3f}), "
          f"of sums {r['ratio_of_sums']:.3f}{same}", flush=True)  # fmt: skip


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Composition cost (target 4): ours and the hand-written Llama take turns every decode "
        "step on the same checkpoint; prints the per-step ratio of their times (hand/ours, 1.0 = as fast).",
    )
    p.add_argument("--shape", default="smollm2-135m", choices=sorted(SHAPES),
                   help="random checkpoint at this model's sizes (default: %(default)s)")  # fmt: skip
    p.add_argument(
        "--checkpoint", type=Path, default=None, help="a Llama checkpoint folder instead of --shape"
    )
    p.add_argument(
        "--dtype", default="bfloat16", choices=sorted(DTYPES), help="(default: %(default)s)"
    )
    p.add_argument(
        "--batch", default="1,8", help="comma-separated batch sizes (default: %(default)s)"
    )
    p.add_argument(
        "--prompt-len",
        type=int,
        default=128,
        help="prompt tokens per sequence (default: %(default)s)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=100,
        help="timed decode steps per side and phase (default: %(default)s)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: tttv2-hw's num_threads for decode)",
    )
    p.add_argument(
        "--no-capture", action="store_true", help="keep ours' per-pass fused-decode checks"
    )
    p.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "tttv2-bench-checkpoints",
                   help="where the random checkpoints are kept (default: %(default)s)")  # fmt: skip
    p.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    args = p.parse_args(argv)
    try:
        args.batch = [int(b) for b in args.batch.split(",") if b.strip()]
    except ValueError:
        p.error(f"--batch: comma-separated integers, got {args.batch!r}")
    if not args.batch or min(args.batch) < 1 or max(args.batch) > 8:
        p.error("--batch: sizes from 1 to 8 (the hand-written model holds 8 sequences)")
    if args.steps < 2 or args.prompt_len < 1:
        p.error("--steps must be at least 2 and --prompt-len at least 1")
    if args.checkpoint is not None and not (args.checkpoint / "config.json").is_file():
        p.error(f"--checkpoint: no config.json in {args.checkpoint}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from tttv2.hw import get_optimal_params

    torch.set_num_threads(args.threads or get_optimal_params("model", "decode").num_threads)
    if args.checkpoint is None:
        args.cache_dir.mkdir(parents=True, exist_ok=True)
        folder, _ = checkpoint(args.shape, args.cache_dir)
    else:
        folder = args.checkpoint
    print(f"{folder.name} {args.dtype}, prompt {args.prompt_len}, {args.steps} steps per side, turns alternating",
          flush=True)  # fmt: skip
    results = measure(
        folder, DTYPES[args.dtype], args.batch, args.prompt_len, args.steps, not args.no_capture
    )
    if args.json is not None:
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        args.json.write_text(json.dumps({"settings": settings, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
