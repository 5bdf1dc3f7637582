"""Where one decode step's time goes, part by part, against the memory-bandwidth roofline.

Performance issue 27 asks why batch-1 decode stops short of the copy bandwidth; this tool
measures it instead of guessing. One model (``--shape``: a random checkpoint written by
``make_checkpoint.py``, or ``--checkpoint`` a folder), loaded and driven as ``tttv2 bench``
drives it (tttv2-cli's loader with decode captured, ``LLMEngine`` over tttv2-hw's paged KV
cache, one sequence). For ``--steps`` decode steps after a ``--prompt-len`` prompt, forward
pre/post hooks on the stack, its embedding, final norm and LM head (hooks on these modules
leave the fused decode path on; hooks on a decoder layer would not) timestamp each part:

* ``engine``: ``LLMEngine.step`` minus the model's forward (scheduling, metadata, sampling);
* ``embedding``, ``final norm``, ``lm head``: each module's call;
* ``layers``: from the embedding's end to the final norm's start (the ``decode_layers``
  program over every layer, plus one ``index_select``);
* ``forward glue``: the rest of the stack's forward (input checks, mode, path choice).

Each part's median time is set against the bytes it must read (its weights, of mixture-of-experts
layers only the ``top_k`` experts a token reads; for the layers also the KV cache at the mean
context) over the copy bandwidth measured in the same run
(``tttv2.cli.measure.stream_bandwidth``): ``% of roofline`` = (bytes / bandwidth) / time.

Two more rows isolate the product kernel from the layer program around it, both timed on
the model's own weights (``DecoderLayer.decode_weights()``), one row, in layer order:
``products only`` calls tttv2-hw's ``skinny_linear`` for every layer's qkv, o, gate_up and
down weight (one Python call each: the four products of all layers with nothing between
them); ``lm head product`` the LM head weight alone. Then all of it again at one thread
(``--no-single-thread`` skips it), which tells synchronisation between threads from the
bandwidth one core can draw. Medians of ``--steps``; nothing asserts a time.

    uv run python tools/bench/decode_breakdown.py --shape llama-3.2-1b
    uv run python tools/bench/decode_breakdown.py --checkpoint path/to/folder --steps 64
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_checkpoint import SHAPES  # noqa: E402
from make_checkpoint import checkpoint as cached_checkpoint  # noqa: E402

from tttv2.cli.loading import load  # noqa: E402
from tttv2.cli.measure import stream_bandwidth  # noqa: E402
from tttv2.cli.roofline import (  # noqa: E402
    active_experts,
    feed_forward_params,
    kv_bytes_read_per_step,
)
from tttv2.cli.throughput import bench_engine  # noqa: E402
from tttv2.core.specs import ModelSpec, MoESpec  # noqa: E402
from tttv2.hw.device.cpu import detect_cpu  # noqa: E402
from tttv2.hw.kernels.native.skinny_linear import skinny_linear, skinny_linear_applies  # noqa: E402
from tttv2.serve.runtime import SamplingParams, StopConditions  # noqa: E402

PARTS = ("engine", "forward glue", "embedding", "layers", "final norm", "lm head")


class Stamps:
    """perf_counter at each hooked module's entry and exit during one step."""

    def __init__(self) -> None:
        self.t: dict[str, float] = {}
        self.handles: list[Any] = []

    def hook(self, module: torch.nn.Module, name: str) -> None:
        def pre(*_: Any) -> None:
            self.t[name + ":in"] = time.perf_counter()

        def post(*_: Any) -> None:
            self.t[name + ":out"] = time.perf_counter()

        self.handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def nbytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def timed_steps(engine: Any, model: Any, steps: int) -> dict[str, list[float]]:
    """Per-part seconds of ``steps`` engine steps (see the module docstring)."""
    stamps = Stamps()
    for module, name in (
        (model, "model"),
        (model.embedding, "embedding"),
        (model.final_norm, "norm"),
        (model.lm_head, "lm"),
    ):
        stamps.hook(module, name)
    out: dict[str, list[float]] = {p: [] for p in ("step", *PARTS)}
    try:
        for _ in range(steps):
            stamps.t.clear()
            start = time.perf_counter()
            engine.step()
            step = time.perf_counter() - start
            t = stamps.t
            forward = t["model:out"] - t["model:in"]
            parts = {
                "embedding": t["embedding:out"] - t["embedding:in"],
                "layers": t["norm:in"] - t["embedding:out"],
                "final norm": t["norm:out"] - t["norm:in"],
                "lm head": t["lm:out"] - t["lm:in"],
            }
            parts["forward glue"] = forward - sum(parts.values())
            parts["engine"] = step - forward
            out["step"].append(step)
            for name, seconds in parts.items():
                out[name].append(seconds)
    finally:
        stamps.remove()  # the next pass times the same model
    return out


def idle_expert_bytes(spec: ModelSpec, itemsize: int) -> int:
    """Bytes of the experts a one-token step does not read (all but ``top_k`` per MoE
    layer), as ``tttv2 bench``'s roofline leaves them out."""
    idle = 0.0
    for layer in spec.layers:
        if isinstance(layer.ffn, MoESpec):
            unread = layer.ffn.num_experts - active_experts(layer.ffn, 1)
            idle += unread * feed_forward_params(layer.ffn.expert) * itemsize
    return round(idle)


def products(model: Any, reps: int) -> tuple[float, float, int, int] | None:
    """Median seconds of every layer's four products in a row, and of the LM head product,
    one activation row each, with their weight bytes; None when the native kernel does not
    serve these weights here."""
    layers = [layer.decode_weights() for layer in model.layers]
    if any(isinstance(d, str) or d.moe is not None for d in layers):
        return None  # op by op, or mixture-of-experts layers (their products change per step)
    weights = [
        w
        for d in layers
        for w in (
            d.weights.qkv_weight,
            d.weights.o_weight,
            d.weights.gate_up_weight,
            d.weights.down_weight,
        )
    ]
    head = model.lm_head.weight
    xs = {w.shape[1]: torch.randn(1, w.shape[1]).to(w.dtype) for w in [*weights, head]}
    if not all(skinny_linear_applies(xs[w.shape[1]], w, None, 1) for w in [*weights, head]):
        return None

    def run_all() -> None:
        for w in weights:
            skinny_linear(xs[w.shape[1]], w)

    def run_head() -> None:
        skinny_linear(xs[head.shape[1]], head)

    return (
        median_time(run_all, reps),
        median_time(run_head, reps),
        sum(w.numel() * w.element_size() for w in weights),
        head.numel() * head.element_size(),
    )


def median_time(fn: Callable[[], None], reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report(label: str, args: argparse.Namespace, loaded: Any, threads: int) -> dict[str, Any]:
    """Measure and print one pass of ``loaded`` at ``threads`` (a fresh engine and cache);
    returns what was printed, as numbers."""
    torch.set_num_threads(threads)
    device = torch.device("cpu")
    model = loaded.model
    with torch.inference_mode():
        bandwidth_before = stream_bandwidth(device)
        engine = bench_engine(loaded, 1, args.prompt_len, args.steps + args.warmup + 1, device)
        prompt = torch.randint(
            0,
            loaded.spec.vocab_size,
            (args.prompt_len,),
            generator=torch.Generator().manual_seed(0),
        )
        engine.add_request(
            prompt.tolist(),
            SamplingParams(),
            StopConditions(max_new_tokens=args.steps + args.warmup + 1),
        )
        for _ in range(1 + args.warmup):  # prefill, then warm decode steps
            engine.step()
        parts = timed_steps(engine, model, args.steps)
        kernel_only = products(model, max(3, args.steps // 8))
        bandwidth_after = stream_bandwidth(device)
    bandwidth = (bandwidth_before + bandwidth_after) / 2
    path = model.decode_path
    itemsize = next(model.parameters()).element_size()
    kv = kv_bytes_read_per_step(
        loaded.spec, 1, args.prompt_len + args.warmup + args.steps / 2, itemsize
    )
    bytes_of = {
        "layers": nbytes(model.layers) - idle_expert_bytes(loaded.spec, itemsize) + kv,
        "final norm": nbytes(model.final_norm),
        "lm head": nbytes(model.lm_head),  # a tied head's weight is the embedding table
        "embedding": model.embedding.weight.shape[1] * itemsize,  # one row
    }
    total_bytes = sum(bytes_of.values())
    step = statistics.median(parts["step"])
    print(
        f"\n{label}: {threads} thread(s), copy bandwidth {bandwidth / 1e9:.1f} GB/s "
        f"(mean of {bandwidth_before / 1e9:.1f} before and {bandwidth_after / 1e9:.1f} after), decode path {path.kind}"
        + (f" ({model.fused_decode_reason})" if model.fused_decode_reason else "")
    )
    print(
        f"{'part':<16} {'median ms':>10} {'% of step':>10} {'MB read':>9} {'GB/s':>7} {'% roofline':>11}"
    )

    def row(name: str, seconds: float, read: int | None) -> None:
        rate = f"{read / seconds / 1e9:7.1f}" if read else f"{'':>7}"
        roof = f"{read / bandwidth / seconds * 100:10.1f}%" if read else f"{'':>11}"
        mb = f"{read / 1e6:9.1f}" if read else f"{'':>9}"
        print(f"{name:<16} {seconds * 1e3:10.3f} {seconds / step * 100:9.1f}% {mb} {rate} {roof}")

    for name in PARTS:
        row(name, statistics.median(parts[name]), bytes_of.get(name))
    row("whole step", step, total_bytes)
    if kernel_only is not None:
        all_s, head_s, all_b, head_b = kernel_only
        print("kernel alone (skinny_linear on the same weights, one row, called back to back):")
        row("products only", all_s, all_b)
        row("lm head product", head_s, head_b)
    else:
        print("kernel alone: not measured (the native product does not serve these weights here)")
    return {
        "threads": threads,
        "bandwidth_bytes_per_s": bandwidth,
        "decode_path": path.kind,
        "fused_decode_reason": model.fused_decode_reason,
        "seconds": {name: statistics.median(parts[name]) for name in ("step", *PARTS)},
        "bytes": bytes_of,
        "products": None
        if kernel_only is None
        else dict(
            zip(("all_s", "lm_head_s", "all_bytes", "lm_head_bytes"), kernel_only, strict=True)
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--shape",
        default="llama-3.2-1b",
        choices=sorted(SHAPES),
        help="random checkpoint shape (default: llama-3.2-1b)",
    )
    parser.add_argument("--checkpoint", type=Path, help="a Hugging Face folder instead of --shape")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "tttv2-bench-checkpoints",
        help="where --shape checkpoints are kept (default: %(default)s)",
    )
    parser.add_argument(
        "--dtype", default="bfloat16", help="as tttv2 bench --dtype (default: bfloat16)"
    )
    parser.add_argument("--prompt-len", type=int, default=128, help="prompt tokens (default: 128)")
    parser.add_argument("--steps", type=int, default=48, help="timed decode steps (default: 48)")
    parser.add_argument("--warmup", type=int, default=4, help="untimed decode steps (default: 4)")
    parser.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="torch threads (default: the usable cores)",
    )
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument("--no-single-thread", action="store_true", help="skip the one-thread pass")
    args = parser.parse_args(argv)
    for flag, value in (
        ("--prompt-len", args.prompt_len),
        ("--steps", args.steps),
        ("--threads", args.threads),
    ):
        if value < 1:
            parser.error(f"{flag} must be at least 1, got {value}")
    if args.warmup < 0:
        parser.error(f"--warmup must be at least 0, got {args.warmup}")
    args.folder = args.checkpoint or cached_checkpoint(args.shape, args.cache_dir)
    cpu = detect_cpu()
    print(
        f"host: {cpu.model_name or 'unknown CPU'}, {cpu.usable_cores} usable cores, ISA {'/'.join(cpu.isa)}, "
        f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}; checkpoint {args.folder}, {args.dtype}, "
        f"prompt {args.prompt_len}, {args.steps} steps"
    )
    loaded = load(args.folder, args.dtype, torch.device("cpu"), capture_decode=True)
    results = [report("all threads", args, loaded, args.threads)]
    if not args.no_single_thread and args.threads > 1:
        results.append(report("one thread", args, loaded, 1))
    if args.json:
        args.json.write_text(
            json.dumps({"checkpoint": str(args.folder), "results": results}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
