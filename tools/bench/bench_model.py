"""Model benchmark suite: TTTv2 against transformers and the hand-written baseline.

For every shape (random weights at the real sizes of SmolLM2-135M and Llama-3.2-1B) and
dtype, one run measures, for each contender:

* ``ours``: the Llama model loaded by ``tttv2.core.model_plugins.load_model``, its fused
  decode captured (``capture_decode()``, as ``tttv2 bench`` and ``tttv2 generate`` do;
  ``--no-capture`` keeps the per-pass re-checks) and driven by the generation runtime
  exactly as ``tttv2 bench`` drives it (``LLMEngine``, paged KV cache of 16-token blocks,
  greedy sampling, one request per prompt);
* ``ours-loop``: the same model and paged cache in a bare greedy loop over
  ``ModelRunner.forward`` like ``hand``'s (no scheduler, sampler or stop checks): ours-loop
  over hand is the composition cost of blocks and strategies (target 4), ours over
  ours-loop what the serving engine adds per step;
* ``hand``: ``tools/bench/handwritten_llama.py``, a monolithic single-file Llama with the
  same kernels and a static KV cache (the composition-cost bar);
* ``hf``: Hugging Face transformers on the same checkpoint, its best eager path: a
  manual forward loop with its own KV cache and ``logits_to_keep=1`` (what ``generate``
  does, minus the logits processors);

the throughput of prefilling 512 tokens (time to first token), of decoding at batch 1 and
at batch 8 (aggregate tokens/s), the memory bandwidth of a torch copy (STREAM "copy"),
and the decode roofline: bytes read per step (weights + KV cache) over that bandwidth.
Contenders run interleaved: each repeat runs one phase (prefill, decode b1, decode b8) for
every contender back to back before the next phase, starting with a different contender
each repeat, so what is compared is measured seconds apart. The table shows medians of
throughput and, for ratios, the median of the per-repeat ratios (a machine slowing down
between repeats moves both sides of a pair); each pair's per-repeat ratios are printed and
kept in the JSON. When memory only holds one contender at a time, ratios are of medians.
Decode rates are wall-clock over whole generation steps (scheduling and sampling included),
for every contender.

With ``--llama-bench PATH`` (a ``llama-bench`` binary built from ggml-org/llama.cpp by
whoever runs this; nothing of llama.cpp is in this repository), bfloat16 runs also put
llama.cpp beside us: the same checkpoint is converted to a bf16 GGUF by llama.cpp's own
``convert_hf_to_gguf.py`` (cached beside the checkpoint; see ``llama_cpp.py``), and
``llama-bench`` measures prefill and decode b1 at our lengths once before and once after our
repeats. The table gains ours/llama.cpp next to ours/hf (ratios of medians: llama.cpp runs
as its own process, not interleaved phase by phase). The converter needs llama.cpp's Python
requirements; this environment has all but ``sentencepiece``, so run it as
``uv run --with sentencepiece python tools/bench/bench_model.py --llama-bench ...`` or pass
``--llama-python`` an interpreter that has them.

What is measured and how is tttv2-cli's, the code ``tttv2 bench`` runs, not a copy of it:
loading (``tttv2.cli.loading.load``, ``throughput.load_hf``), the engine run
(``throughput.run_ours``), the greedy timing loop of hf, ours-loop and hand
(``throughput.time_greedy_loop``), prompts (``throughput.bench_prompts``), the copy bandwidth
(``measure.stream_bandwidth``), the roofline (``roofline.decode_roofline``: weights as our
model stores them, KV cache at the mean decode context), ratios (``ratios``) and the thread
count (``hardware.apply_num_threads``). This file only lines the contenders up, interleaves
them and prints the tables; ``hand`` and llama.cpp are tool-only.

Warm-up (checkpoint creation, loading with weight preparation, first call, compilation
when ``--compile`` is given) is measured and reported separately. Checkpoints are written
once by ``make_checkpoint.py`` (random bf16 weights under transformers' Llama names) and
cached in ``--cache-dir``; nothing is downloaded. Nothing here asserts a time.

    uv run python tools/bench/bench_model.py --quick
    uv run python tools/bench/bench_model.py --shapes smollm2-135m --dtypes bfloat16 --json out.json
    uv run --with sentencepiece python tools/bench/bench_model.py --shapes smollm2-135m --dtypes bfloat16 \
        --llama-bench ~/llama.cpp/build/bin/llama-bench
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llama_cpp  # noqa: E402
from handwritten_llama import HandwrittenLlama  # noqa: E402
from make_checkpoint import SHAPES as ALL_SHAPES  # noqa: E402
from make_checkpoint import checkpoint as cached_checkpoint  # noqa: E402

from tttv2.cli.hardware import apply_num_threads, device_config  # noqa: E402
from tttv2.cli.kv_pool import loaded_kv_pool  # noqa: E402
from tttv2.cli.loading import DTYPES, load  # noqa: E402
from tttv2.cli.measure import stream_bandwidth  # noqa: E402
from tttv2.cli.options import int_at_least  # noqa: E402
from tttv2.cli.ratios import median_present, per_repeat_ratios, ratio  # noqa: E402
from tttv2.cli.roofline import Roofline, decode_roofline, roofline  # noqa: E402
from tttv2.cli.throughput import (  # noqa: E402
    bench_prompts,
    load_hf,
    run_hf,
    run_ours,
    time_greedy_loop,
)
from tttv2.hw import count_params  # noqa: E402

SUITE_SHAPES = ("smollm2-135m", "llama-3.2-1b")
SHAPES: dict[str, dict[str, Any]] = {name: ALL_SHAPES[name] for name in SUITE_SHAPES}
CONTENDERS = ("ours", "ours-loop", "hand", "hf")
CPU = torch.device("cpu")


# -- checkpoints ------------------------------------------------------------------------
def checkpoint(shape: str, cache_dir: Path) -> tuple[Path, float]:
    """The folder of ``shape``'s random bf16 checkpoint (written on first use by
    ``make_checkpoint.py``) and the seconds spent writing it now (0.0 when it was cached)."""
    start = time.perf_counter()
    exists = (cache_dir / shape / "config.json").is_file()
    folder = cached_checkpoint(shape, cache_dir)
    return folder, 0.0 if exists else time.perf_counter() - start


# -- contenders -------------------------------------------------------------------------
@dataclass
class Runs:
    """What one contender measured: seconds per phase and repeat."""

    load_s: float = 0.0
    first_call_s: float = 0.0
    prefill_s: list[float] = field(default_factory=list)
    decode_b1: list[float] = field(default_factory=list)  # tokens/s
    decode_b8: list[float] = field(default_factory=list)  # aggregate tokens/s


class Contender:
    """``run(prompts, steps) -> (seconds to the first tokens, seconds of the steps - 1
    greedy decode steps after them)``; ``prefill`` and ``decode`` are its two measures."""

    name = ""

    def run(self, prompts: list[list[int]], steps: int) -> tuple[float, float]:
        raise NotImplementedError

    def prefill(self, prompt: list[int]) -> float:
        """Seconds to the first token of ``prompt``."""
        return self.run([prompt], 1)[0]

    def decode(self, prompts: list[list[int]], steps: int) -> float:
        """Aggregate decode tokens/s over ``steps - 1`` greedy steps after the prefill."""
        return len(prompts) * (steps - 1) / self.run(prompts, steps)[1]


class Ours(Contender):
    """Loaded as ``tttv2 bench`` loads (tttv2.cli.loading.load) and run as it runs
    (tttv2.cli.throughput.run_ours: ``LLMEngine``, greedy, no EOS)."""

    name = "ours"

    def __init__(
        self,
        folder: Path,
        dtype: torch.dtype,
        compile_decode: bool,
        capture: bool,
        max_batch: int = 1,
    ) -> None:
        dtype_name = next(name for name, d in DTYPES.items() if d == dtype)
        self.loaded = load(folder, dtype_name, CPU, capture_decode=capture)
        if compile_decode:  # as tttv2 bench --compile: one graph for batches up to max_batch
            self.loaded.model.compile_decode(max_batch=max_batch)

    def run(self, prompts: list[list[int]], steps: int) -> tuple[float, float]:
        outputs = run_ours(self.loaded, torch.tensor(prompts), steps, CPU)[1]
        ttft = max(o.timings.time_to_first_token or 0.0 for o in outputs)
        first = max(o.timings.token_times[0] for o in outputs)  # all prefilled in one step
        return ttft, max(o.timings.token_times[-1] for o in outputs) - first


class OursLoop(Ours):
    """The same model and paged cache driven like ``hand``: a bare greedy loop over
    ``ModelRunner.forward`` (the runtime's lowest layer: cache bookkeeping and the model
    call), no scheduler, sampler or stop checks. ours-loop/hand is the composition cost
    of blocks and strategies; ours/ours-loop what the serving engine adds per step."""

    name = "ours-loop"

    def run(self, prompts: list[list[int]], steps: int) -> tuple[float, float]:
        from tttv2.core.modes import ExecutionMode
        from tttv2.serve.runtime import Chunk, ModelRunner
        from tttv2.serve.runtime.engine import joined_rows

        pool = loaded_kv_pool(  # the KV cache run_ours plans for the same job
            self.loaded, CPU, seq_len=len(prompts[0]) + steps, num_seqs=len(prompts)
        )
        runner = ModelRunner(
            self.loaded.model, pool.num_blocks, pool.block_size, self.loaded.max_context, device=CPU
        )

        def forward(chunks: list[Chunk], mode: ExecutionMode) -> torch.Tensor:
            return joined_rows(runner.forward(chunks, mode))

        return time_greedy_loop(
            lambda: forward([Chunk(i, p) for i, p in enumerate(prompts)], ExecutionMode.PREFILL),
            lambda tokens: forward(
                [Chunk(i, [t]) for i, t in enumerate(tokens.view(-1).tolist())],
                ExecutionMode.DECODE,
            ),
            steps,
            CPU,
        )


class Hand(Contender):
    name = "hand"

    def __init__(
        self, folder: Path, dtype: torch.dtype, max_seq_len: int, compile_decode: bool
    ) -> None:
        self.model = HandwrittenLlama(folder, dtype=dtype, max_seq_len=max_seq_len, max_batch=8)
        self.forward: Callable[..., torch.Tensor] = self.model.forward
        self.compiled: Callable[..., torch.Tensor] | None = None
        if compile_decode:
            self.compiled = torch.compile(self.model.forward, dynamic=True)

    @torch.no_grad()
    def run(self, prompts: list[list[int]], steps: int) -> tuple[float, float]:
        step_fn = self.compiled or self.forward
        ids = torch.tensor(prompts)
        pos = ids.shape[1]

        def step(tokens: torch.Tensor) -> torch.Tensor:
            nonlocal pos
            pos += 1
            return step_fn(tokens, pos - 1)

        return time_greedy_loop(lambda: self.forward(ids, 0), step, steps, CPU)


class HF(Contender):
    """transformers loaded as ``tttv2 bench`` loads it (tttv2.cli.throughput.load_hf) and
    run by its loop (tttv2.cli.throughput.run_hf), last logits only."""

    name = "hf"

    def __init__(self, folder: Path, dtype: torch.dtype) -> None:
        self.model = load_hf(folder, dtype, CPU)

    def run(self, prompts: list[list[int]], steps: int) -> tuple[float, float]:
        return run_hf(self.model, torch.tensor(prompts), steps, CPU, logits_to_keep=1)


def build(
    name: str, folder: Path, dtype: torch.dtype, args: argparse.Namespace
) -> tuple[Contender, float]:
    start = time.perf_counter()
    if name in ("ours", "ours-loop"):
        kind = Ours if name == "ours" else OursLoop
        contender: Contender = kind(folder, dtype, args.compile, not args.no_capture, args.batch)
    elif name == "hand":
        contender = Hand(
            folder, dtype, args.prefill_len + args.prompt_len + args.gen_len + 8, args.compile
        )
    else:
        contender = HF(folder, dtype)
    return contender, time.perf_counter() - start


# -- measurement ------------------------------------------------------------------------
def prompts(batch: int, length: int, vocab: int, seed: int) -> list[list[int]]:
    """``tttv2 bench``'s random prompts (tttv2.cli.throughput.bench_prompts), as lists."""
    return bench_prompts(batch, length, vocab, seed).tolist()


def decode_bytes(
    folder: Path, dtype_name: str, args: argparse.Namespace
) -> tuple[dict[int, Roofline], int]:
    """``tttv2 bench``'s decode roofline (tttv2.cli.roofline.decode_roofline) at batch 1 and
    ``--batch`` at 1 byte/s, i.e. the bytes a step reads (weights as our model stores them,
    the KV cache at the mean context of the decode steps), and the model's parameters
    (tttv2-hw's count_params: a tied head once); the run's bandwidth comes later."""
    loaded = load(folder, dtype_name, CPU)
    roofs = {
        b: decode_roofline(loaded.model, loaded.spec, b, args.prompt_len, args.gen_len, 1.0)
        for b in (1, args.batch)
    }
    params = count_params(loaded.spec).total
    del loaded
    gc.collect()
    return roofs, params


def run_config(shape: str, dtype_name: str, args: argparse.Namespace) -> dict[str, Any]:
    folder, created_s = checkpoint(shape, args.cache_dir)
    cfg = SHAPES[shape]
    dtype = DTYPES[dtype_name]
    vocab = cfg["vocab_size"]
    long_prompt = prompts(1, args.prefill_len, vocab, seed=1)[0]
    one = prompts(1, args.prompt_len, vocab, seed=2)
    eight = prompts(args.batch, args.prompt_len, vocab, seed=3)
    warm = prompts(
        1, args.prompt_len, vocab, seed=4
    )  # real lengths: a compiled step sees its shapes
    runs = {name: Runs() for name in args.contenders}
    roofs, params = decode_bytes(folder, dtype_name, args)
    sequential = (
        len(args.contenders) * params * dtype.itemsize > args.memory_fraction * _available_bytes()
    )
    bandwidths: list[float] = []
    llama_runs: list[llama_cpp.LlamaBenchResult] = []  # one before and one after our repeats
    llama_command = _llama_command(folder, dtype_name, args)

    def llama_bench(when: str) -> None:
        if llama_command is not None:
            _note(f"  llama-bench ({when} our repeats)")
            llama_runs.append(
                llama_cpp.run_bench(
                    llama_command, args.prefill_len, args.gen_len - 1, args.prompt_len
                )
            )

    phases: list[Callable[[Contender, Runs], None]] = [  # prefill, decode b1, decode b8
        lambda c, r: r.prefill_s.append(c.prefill(long_prompt)),
        lambda c, r: r.decode_b1.append(c.decode(one, args.gen_len)),
        lambda c, r: r.decode_b8.append(c.decode(eight, args.gen_len)),
    ]

    def report(name: str) -> None:
        r = runs[name]
        _note(f"    {name}: prefill {args.prefill_len / r.prefill_s[-1]:.1f} tok/s, decode b1 "
              f"{r.decode_b1[-1]:.2f} tok/s, b{args.batch} {r.decode_b8[-1]:.2f} tok/s")  # fmt: skip

    def load(name: str) -> Contender:
        gc.collect()
        contender, runs[name].load_s = build(name, folder, dtype, args)
        start = time.perf_counter()
        contender.decode(warm, 3)  # first calls: lazy set-up, compilation with --compile
        contender.decode([warm[0]] * args.batch, 3)
        runs[name].first_call_s = time.perf_counter() - start
        return contender

    _note(f"{shape} {dtype_name}: {params / 1e6:.1f}M parameters, "
          f"{'one contender at a time' if sequential else 'contenders interleaved'}")  # fmt: skip
    llama_bench("before")
    if sequential:  # not enough memory for three copies of the weights
        for name in args.contenders:
            contender = load(name)
            for rep in range(args.repeats):
                bandwidths.append(stream_bandwidth(CPU, args.bandwidth_mib << 20))
                _note(f"  repeat {rep + 1}/{args.repeats}")
                for phase in phases:
                    phase(contender, runs[name])
                report(name)
            del contender
    else:
        # phase by phase, the contenders back to back (starting with a different one each
        # repeat): what is compared is measured seconds apart, so per-repeat ratios pair up
        loaded = {name: load(name) for name in args.contenders}
        for rep in range(args.repeats):
            bandwidths.append(stream_bandwidth(CPU, args.bandwidth_mib << 20))
            _note(f"  repeat {rep + 1}/{args.repeats}")
            order = (
                args.contenders[rep % len(args.contenders) :]
                + args.contenders[: rep % len(args.contenders)]
            )
            for phase in phases:
                for name in order:
                    phase(loaded[name], runs[name])
            for name in args.contenders:
                report(name)
        del loaded
    gc.collect()
    llama_bench("after")
    result = summarise(
        shape, dtype_name, runs, params, roofs, bandwidths, created_s, sequential, args
    )
    if llama_runs:
        result["llama_cpp"] = llama_cpp.summary(llama_runs)
        result["ratio_llama_cpp"] = {  # ratios of medians: llama-bench is not interleaved with us
            f"{name}/llama.cpp": {
                k: ratio(result["median"][name][k], result["llama_cpp"][k]) for k in LLAMA_KEYS
            }
            for name in ("ours", "hf")
            if name in result["median"]
        }
    return result


LLAMA_KEYS = ("prefill_tokens_per_s", "decode_b1_tokens_per_s")  # what llama-bench measures here


def _llama_command(folder: Path, dtype_name: str, args: argparse.Namespace) -> list[str] | None:
    """The llama-bench command for this checkpoint (converting it on first use), or None
    without ``--llama-bench`` or for float32 (the GGUF is bf16, like the checkpoint)."""
    if args.llama_bench is None or dtype_name != "bfloat16":
        return None
    start = time.perf_counter()
    fresh = not llama_cpp.gguf_path(folder).is_file()
    gguf = llama_cpp.convert(folder, args.llama_converter, args.llama_python)
    if fresh:
        _note(
            f"  converted to {gguf} with llama.cpp's converter in {time.perf_counter() - start:.0f} s"
        )
    return llama_cpp.bench_command(args.llama_bench, gguf, args.llama_threads, args.prefill_len, args.gen_len - 1,
                                   args.prompt_len, args.llama_repetitions)  # fmt: skip


def _rates(r: Runs, key: str, prefill_len: int) -> list[float]:
    """Per-repeat tokens/s of the throughput ``key``."""
    if key == "prefill_tokens_per_s":
        return [prefill_len / s for s in r.prefill_s]
    return r.decode_b1 if key == "decode_b1_tokens_per_s" else r.decode_b8


def summarise(
    shape: str,
    dtype_name: str,
    runs: dict[str, Runs],
    params: int,
    roofs: dict[int, Roofline],
    bandwidths: list[float],
    created_s: float,
    sequential: bool,
    args: argparse.Namespace,
) -> dict[str, Any]:
    bandwidth = statistics.median(bandwidths)
    roofline_of = {}  # tttv2 bench's roofline (tttv2.cli.roofline) at both batch sizes
    for batch, at_one in roofs.items():
        roof = roofline(bandwidth, at_one.weight_bytes, at_one.kv_bytes_per_step, batch)
        roofline_of[f"b{batch}"] = {
            "bytes_per_step": roof.bytes_per_decode_step,
            "tokens_per_s": roof.decode_tokens_per_s,
        }
    medians: dict[str, dict[str, float]] = {}
    for name, r in runs.items():
        medians[name] = {
            "prefill_tokens_per_s": args.prefill_len / statistics.median(r.prefill_s),
            "decode_b1_tokens_per_s": statistics.median(r.decode_b1),
            f"decode_b{args.batch}_tokens_per_s": statistics.median(r.decode_b8),
        }
        m = medians[name]
        m["b1_roofline_fraction"] = m["decode_b1_tokens_per_s"] / roofline_of["b1"]["tokens_per_s"]
        m[f"b{args.batch}_over_b1"] = (
            m[f"decode_b{args.batch}_tokens_per_s"] / m["decode_b1_tokens_per_s"]
        )
    ratios: dict[str, dict[str, Any]] = {}
    spreads: dict[str, dict[str, list[Any]]] = {}
    for a, b in (("ours", "hf"), ("ours", "hand"), ("ours-loop", "hand"), ("hand", "hf")):
        if a in medians and b in medians:
            # interleaved: the median of the per-repeat ratios (pairs measured seconds apart);
            # one contender at a time: the ratio of the medians (tttv2.cli.ratios)
            keys = [key for key in medians[a] if key.endswith("tokens_per_s")]
            per_repeat = {
                k: per_repeat_ratios(
                    _rates(runs[a], k, args.prefill_len), _rates(runs[b], k, args.prefill_len)
                )
                for k in keys
            }
            ratios[f"{a}/{b}"] = {
                k: ratio(medians[a][k], medians[b][k])
                if sequential
                else median_present(per_repeat[k])
                for k in keys
            }
            spreads[f"{a}/{b}"] = per_repeat
    return {
        "shape": shape,
        "dtype": dtype_name,
        "parameters": params,
        "checkpoint_created_s": created_s,
        "contenders_interleaved": not sequential,
        "stream_bandwidth_bytes_per_s": bandwidth,
        "stream_bandwidth_samples": bandwidths,
        "roofline": roofline_of,
        "median": medians,
        "ratio": ratios,
        "ratio_per_repeat": spreads,
        "warmup_s": {n: {"load": r.load_s, "first_calls": r.first_call_s} for n, r in runs.items()},
        "samples": {n: vars(r) for n, r in runs.items()},
    }


# -- report -----------------------------------------------------------------------------
def print_table(result: dict[str, Any], batch: int) -> None:
    med, rat = result["median"], result["ratio"]
    keys = [("prefill_tokens_per_s", "prefill tok/s"), ("decode_b1_tokens_per_s", "decode b1 tok/s"),
            (f"decode_b{batch}_tokens_per_s", f"decode b{batch} tok/s")]  # fmt: skip
    names = list(med)
    pairs = list(rat)
    print(f"\n{result['shape']} {result['dtype']}  ({result['parameters'] / 1e6:.1f}M params, "
          f"stream copy {result['stream_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s)")  # fmt: skip
    print(f"{'':18}" + "".join(f"{n:>12}" for n in names) + "".join(f"{p:>16}" for p in pairs))
    for key, label in keys:
        row = f"{label:18}" + "".join(f"{med[n][key]:12.2f}" for n in names)
        print(row + "".join(f"{rat[p][key]:15.2f}x" for p in pairs))
    print(f"{'b1 roofline':18}" + "".join(f"{med[n]['b1_roofline_fraction']:11.1%} " for n in names)
          + f"   (roofline {result['roofline']['b1']['tokens_per_s']:.2f} tok/s: "
          f"{result['roofline']['b1']['bytes_per_step'] / 1e6:.0f} MB/step)")  # fmt: skip
    print(
        f"{'b' + str(batch) + ' / b1':18}"
        + "".join(f"{med[n][f'b{batch}_over_b1']:11.2f}x" for n in names)
    )
    for pair, per_key in result["ratio_per_repeat"].items():
        for key, label in keys:
            print(f"  {pair} {label} per repeat: " + ", ".join(f"{v:.2f}" for v in per_key[key]))
    warm = result["warmup_s"]
    print(
        f"{'warm-up s (load+1st)':18}"
        + "".join(f"{warm[n]['load']:6.1f}+{warm[n]['first_calls']:<5.1f}" for n in names)
    )
    if "llama_cpp" in result:
        print_llama_cpp(result)


def print_llama_cpp(result: dict[str, Any]) -> None:
    """ours / llama.cpp beside ours / transformers, with llama-bench's build and host."""
    lc, med = result["llama_cpp"], result["median"]
    pairs = list(result["ratio_llama_cpp"])
    print(
        f"\nllama.cpp (llama-bench {lc['build_commit']}, bf16 GGUF, {lc['n_threads']} threads, CPU: {lc['cpu_info']})"
    )
    print(
        f"{'':18}{'ours':>12}{'llama.cpp':>12}"
        + "".join(f"{p:>16}" for p in pairs)
        + f"{'ours/hf':>12}"
    )
    for key, label in zip(LLAMA_KEYS, ("prefill tok/s", "decode b1 tok/s"), strict=True):
        ours = f"{med['ours'][key]:12.2f}" if "ours" in med else f"{'-':>12}"
        row = f"{label:18}{ours}{lc[key]:12.2f}"
        row += "".join(f"{result['ratio_llama_cpp'][p][key]:15.2f}x" for p in pairs)
        hf = result["ratio"].get("ours/hf")
        print(row + (f"{hf[key]:11.2f}x" if hf else f"{'-':>12}"))
    for key, label in (("prefill_tokens_per_s", "prefill"), ("decode_tokens_per_s", "decode b1")):
        print(f"  llama.cpp {label} per run (before, after our repeats): "
              + ", ".join(f"{run[key]:.2f}" for run in lc["runs"]))  # fmt: skip


def targets(results: list[dict[str, Any]], batch: int) -> list[dict[str, Any]]:
    """The issue's targets with the measured values (None where not measured)."""

    def get(shape: str, dtype: str, *path: str) -> float | None:
        for r in results:
            if r["shape"] == shape and r["dtype"] == dtype:
                node: Any = r
                for p in path:
                    if not isinstance(node, dict) or p not in node:
                        return None
                    node = node[p]
                return node
        return None

    rows = []

    def add(target: str, value: float | None, goal: float) -> None:
        rows.append(
            {
                "target": target,
                "value": value,
                "goal": goal,
                "met": None if value is None else value >= goal,
            }
        )

    bf = "bfloat16"
    add(
        "1. decode b1 bf16 ours/hf, smollm2-135m",
        get("smollm2-135m", bf, "ratio", "ours/hf", "decode_b1_tokens_per_s"),
        3.0,
    )
    add(
        "1. decode b1 bf16 ours/hf, llama-3.2-1b",
        get("llama-3.2-1b", bf, "ratio", "ours/hf", "decode_b1_tokens_per_s"),
        2.5,
    )
    add(
        "1. decode b1 bf16 roofline fraction, llama-3.2-1b",
        get("llama-3.2-1b", bf, "median", "ours", "b1_roofline_fraction"),
        0.75,
    )
    add(
        "2. prefill 512 bf16 ours/hf, smollm2-135m",
        get("smollm2-135m", bf, "ratio", "ours/hf", "prefill_tokens_per_s"),
        1.2,
    )
    add(
        "2. prefill 512 bf16 ours/hf, llama-3.2-1b",
        get("llama-3.2-1b", bf, "ratio", "ours/hf", "prefill_tokens_per_s"),
        1.2,
    )
    for dtype in ("bfloat16", "float32"):
        add(
            f"3. decode b{batch}/b1 ours, smollm2-135m {dtype}",
            get("smollm2-135m", dtype, "median", "ours", f"b{batch}_over_b1"),
            4.0,
        )
    for shape in SHAPES:
        for dtype in ("bfloat16", "float32"):
            for key in (
                "prefill_tokens_per_s",
                "decode_b1_tokens_per_s",
                f"decode_b{batch}_tokens_per_s",
            ):
                add(
                    f"4. ours-loop/hand {key}, {shape} {dtype}",
                    get(shape, dtype, "ratio", "ours-loop/hand", key),
                    0.95,
                )
                add(
                    f"   ours/hand (engine) {key}, {shape} {dtype}",
                    get(shape, dtype, "ratio", "ours/hand", key),
                    0.95,
                )
    return rows


def print_targets(rows: list[dict[str, Any]]) -> None:
    print("\ntargets")
    for row in rows:
        value = "not measured" if row["value"] is None else f"{row['value']:.3g}"
        verdict = "" if row["met"] is None else ("met" if row["met"] else "NOT met")
        print(f"  {row['target']:58} {value:>12}  (goal >= {row['goal']:g}) {verdict}")


def machine() -> dict[str, Any]:
    """The host, as `tttv2 bench` names it (tttv2.cli.host: CPU, ISA, cores, threads, each
    native kernel's ISA variant, the bf16 many-row GEMM's variant), plus versions and the load."""
    from tttv2.cli.host import host_facts
    from tttv2.hw import DeviceConfig

    device = DeviceConfig.auto_detect()
    return {
        **host_facts(device, torch.bfloat16),
        "bf16_native": device.cpu.bf16_native,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
    }


def _available_bytes() -> int:
    import psutil

    return psutil.virtual_memory().available


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- command line -----------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Prefill and decode speed of TTTv2's Llama next to transformers and a hand-written "
        "Llama, with the memory-bandwidth roofline, all measured in one run (medians of interleaved repeats).",
    )
    p.add_argument(
        "--shapes",
        default=",".join(SHAPES),
        help="comma-separated: " + ", ".join(SHAPES) + " (default: all)",
    )
    p.add_argument(
        "--dtypes",
        default="float32,bfloat16",
        help="comma-separated: float32, bfloat16 (default: both)",
    )
    p.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help="comma-separated subset of ours, ours-loop, hand, hf",
    )
    p.add_argument(
        "--repeats",
        type=int_at_least(1),
        default=3,
        help="measurement rounds (default: %(default)s)",
    )
    p.add_argument(
        "--prefill-len",
        type=int_at_least(1),
        default=512,
        help="prompt tokens of the prefill test (default: %(default)s)",
    )
    p.add_argument(
        "--prompt-len",
        type=int_at_least(1),
        default=128,
        help="prompt tokens before decoding (default: %(default)s)",
    )
    p.add_argument(
        "--gen-len",
        type=int_at_least(2),
        default=33,
        help="tokens generated per decode test (default: %(default)s)",
    )
    p.add_argument(
        "--batch",
        type=int_at_least(1),
        default=8,
        help="sequences of the batched decode test (default: %(default)s)",
    )
    p.add_argument(
        "--threads",
        type=int_at_least(1),
        default=None,
        help="torch threads (default: as tttv2 bench: tttv2-hw's num_threads for decode, unless "
        "OMP_NUM_THREADS or MKL_NUM_THREADS is set)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="compile the decode step of ours and hand (torch.compile)",
    )
    p.add_argument("--no-capture", action="store_true",
                   help="ours and ours-loop re-check their fused decode binding before every pass (the "
                   "library's default) instead of capturing it as tttv2 generate and bench do")  # fmt: skip
    p.add_argument(
        "--bandwidth-mib",
        type=int_at_least(1),
        default=256,
        help="size of the copied arrays (default: %(default)s)",
    )
    p.add_argument("--memory-fraction", type=float, default=0.6,
                   help="run contenders one at a time when three copies of the weights exceed this fraction "
                   "of available memory (default: %(default)s)")  # fmt: skip
    p.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "tttv2-bench-checkpoints",
                   help="where the random checkpoints are kept (default: %(default)s)")  # fmt: skip
    p.add_argument(
        "--llama-bench",
        type=Path,
        default=None,
        metavar="PATH",
        help="also measure llama.cpp: its llama-bench binary, built by you from ggml-org/llama.cpp "
        "(bfloat16 runs only; the checkpoint is converted with llama.cpp's convert_hf_to_gguf.py)",
    )
    p.add_argument(
        "--llama-cpp-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="the llama.cpp checkout holding convert_hf_to_gguf.py (default: found above the "
        "llama-bench binary, e.g. DIR/build/bin/llama-bench)",
    )
    p.add_argument(
        "--llama-python",
        default=sys.executable,
        metavar="PY",
        help="interpreter that runs the converter; it needs llama.cpp's convert requirements "
        "(torch, transformers, safetensors, numpy, pyyaml, sentencepiece) (default: this one; "
        "run under 'uv run --with sentencepiece' to give it sentencepiece)",
    )
    p.add_argument(
        "--llama-repetitions",
        type=int_at_least(1),
        default=3,
        help="llama-bench -r per run (default: %(default)s)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 repeat, prefill 64, prompt 16, generate 5",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.prefill_len, args.prompt_len, args.gen_len = 1, 64, 16, 5
    args.shapes = _choices(args.shapes, SHAPES, "--shapes", p)
    args.dtypes = _choices(args.dtypes, DTYPES, "--dtypes", p)
    args.contenders = _choices(args.contenders, CONTENDERS, "--contenders", p)
    return args


def _choices(text: str, allowed: Sequence[str], flag: str, p: argparse.ArgumentParser) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        p.error(f"{flag}: {', '.join(bad) or 'nothing given'} not in {', '.join(allowed)}")
    return items


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    else:  # tttv2 bench's choice (tttv2.cli.hardware): tttv2-hw's, or OMP/MKL_NUM_THREADS
        apply_num_threads(device_config(CPU))
    threads = torch.get_num_threads()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    args.llama_threads = threads  # llama-bench -t: the threads torch has
    if args.llama_bench is not None:
        try:  # before anything is measured: a wrong path fails in a second, not after the suite
            llama_cpp.check_binary(args.llama_bench)
            args.llama_converter = llama_cpp.find_converter(args.llama_bench, args.llama_cpp_dir)
        except llama_cpp.LlamaCppError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    facts = machine()
    try:
        results = [run_config(shape, dtype, args) for shape in args.shapes for dtype in args.dtypes]
    except llama_cpp.LlamaCppError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for result in results:
        print_table(result, args.batch)
    rows = targets(results, args.batch)
    print_targets(rows)
    facts["load_average_at_end"] = os.getloadavg()
    print(f"\nmachine: {facts}")
    if args.json is not None:
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        args.json.write_text(
            json.dumps(
                {"machine": facts, "settings": settings, "results": results, "targets": rows},
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
