"""``tttv2 bench``: prefill and decode speed of our model next to transformers on the same
checkpoint in the same run, and the memory-bandwidth roofline of decoding."""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time

import torch

from tttv2.cli import options
from tttv2.cli.default_checkpoint import DEFAULT_CHECKPOINT_NOTE, default_checkpoint
from tttv2.cli.errors import UsageError
from tttv2.cli.hardware import apply_num_threads, device_config
from tttv2.cli.host import format_host, host_facts
from tttv2.cli.kv_pool import plan_kv_pool
from tttv2.cli.loading import DTYPES, load, resolve_device
from tttv2.cli.measure import stream_bandwidth
from tttv2.cli.precision_bench import run_precision_bench
from tttv2.cli.progress import progress_enabled
from tttv2.cli.ratios import ratio as ratio_of
from tttv2.cli.roofline import decode_roofline
from tttv2.cli.tensor_parallel import add_tp_options, run_tensor_parallel, tp_size
from tttv2.cli.throughput import bench_hf, bench_ours, bench_prompts, load_hf
from tttv2.cli.tp_bench import bench_tp_loaded
from tttv2.hw.precision import PRESETS


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bench",
        help="measure speed against transformers and the bandwidth roofline",
        description="Measure prefill tokens/s, time to first token, decode tokens/s and peak memory "
        "for our model and for Hugging Face transformers on the same checkpoint in the same run, "
        "with their ratios (ours / transformers), and the memory-bandwidth roofline of decoding: "
        "bytes read per decode step (weights + KV cache; of a mixture-of-experts layer only the "
        "router, shared expert and routed experts: top_k per token) over the bandwidth of a torch "
        "copy measured right before and right after our timed run (their mean; both are printed). Warm-up "
        "is reported apart from the rates: loading (reading the "
        "checkpoint, preparing the weights; for transformers also importing its model code on "
        "first use) and the first, untimed run. Our decode runs captured, as in tttv2 generate: "
        "the fused decode binding is made once, not re-checked every step. Numbers are noisy on "
        "shared machines: compare ratios.",
    )
    options.add_checkpoint(p, required=False, default_note=DEFAULT_CHECKPOINT_NOTE)
    options.add_model_options(p)
    p.add_argument("--batch", type=options.int_at_least(1), default=1, metavar="N",
                   help="sequences run together (default: %(default)s)")  # fmt: skip
    p.add_argument("--prompt-len", type=options.int_at_least(1), default=128, metavar="P",
                   help="prompt tokens per sequence, random ids (default: %(default)s)")  # fmt: skip
    p.add_argument("--gen-len", type=options.int_at_least(1), default=32, metavar="G",
                   help="tokens generated per sequence (default: %(default)s)")  # fmt: skip
    p.add_argument("--compile", action="store_true",
                   help="compile our decode step with torch.compile before timing (one graph for every "
                   "context length, batches up to --batch); on CUDA the step is also captured as a CUDA "
                   "graph where tttv2-hw's capture_graph is on for decode (tttv2 hw --op model). The "
                   "untimed first run is then the whole measured run, so every shape is compiled "
                   "before timing; it is reported as warm-up, apart. On small CPUs the native eager "
                   "decode is usually faster than the compiled one")  # fmt: skip
    p.add_argument("--precision", choices=sorted(PRESETS), metavar="PRESET", default=None,
                   help="compare a precision preset against --dtype instead of against transformers: "
                   "the checkpoint loaded twice, once with the preset's weight formats (int8: int8 "
                   "weights per output channel, decoded by native int8 kernels on AVX2 CPUs), timed "
                   "alternately --repeats times; prints both, the median per-repeat ratio (preset / "
                   f"baseline) and each one's roofline. One of: {', '.join(sorted(PRESETS))}")  # fmt: skip
    p.add_argument("--repeats", type=options.int_at_least(1), default=3, metavar="R",
                   help="with --precision: alternating timing rounds per model (default: %(default)s)")  # fmt: skip
    p.add_argument("--bandwidth-mib", type=options.int_at_least(1), default=256, metavar="MIB",
                   help="size of the arrays copied to measure memory bandwidth (default: %(default)s)")  # fmt: skip
    add_tp_options(
        p,
        timeout_default=300.0,
        timeout_note=" (a rank that dies is noticed at once: the command prints one line and exits 1)",
    )
    p.epilog = (
        "With --tp N (N >= 1) bench measures only our model, split over N ranks: prefill and decode "
        "tokens/s, the decode step time and how much of it rank 0 spent in collectives "
        "(all-reduces, the logits all-gather and the broadcast of the batch description). "
        "Run --tp 1 beside it on the same host for the baseline (it uses the unsplit model's "
        "fused decode). transformers and the roofline are not run then."
    )
    options.add_json(p, "ours, hf, ratio and roofline (with --tp: one flat record)")


def run(args: argparse.Namespace) -> int:
    if args.compile and (args.tp is not None or tp_size(args) > 1):
        raise UsageError("--compile cannot be combined with --tp (the split model runs op by op)")
    if args.precision is not None and (args.tp is not None or tp_size(args) > 1):
        raise UsageError(
            "--precision cannot be combined with --tp (the precision comparison runs in one process)"
        )
    device = resolve_device(args.device)
    hw = device_config(device)
    apply_num_threads(hw)
    show = progress_enabled(args.json)
    checkpoint = (
        args.checkpoint if args.checkpoint is not None else default_checkpoint(show_progress=show)
    )
    if args.tp is not None or tp_size(args) > 1:
        if tp_size(args) > 1:
            return run_tensor_parallel(args, checkpoint, device, bench_tp_loaded)
        loaded = load(
            checkpoint, args.dtype, device, args.strategy, show_progress=show, capture_decode=True,
            allow_nonfinite_weights=args.allow_nonfinite_weights,
        )  # fmt: skip
        return bench_tp_loaded(args, loaded, checkpoint, device)
    if args.precision is not None:
        return run_precision_bench(args, checkpoint, device, hw, show, _note, _decode_path)
    start = time.perf_counter()
    loaded = load(
        checkpoint,
        args.dtype,
        device,
        args.strategy,
        show_progress=show,
        capture_decode=True,
        allow_nonfinite_weights=args.allow_nonfinite_weights,
    )
    load_s = time.perf_counter() - start
    if args.compile:
        compile_decode = getattr(loaded.model, "compile_decode", None)
        if not callable(compile_decode):
            raise UsageError(f"--compile: {type(loaded.model).__name__} has no compile_decode()")
        compile_decode(max_batch=args.batch)  # traced at the warm-up run's first decode step
    if args.prompt_len + args.gen_len > loaded.max_context:
        raise UsageError(
            f"--prompt-len {args.prompt_len} + --gen-len {args.gen_len} exceeds the model's context "
            f"of {loaded.max_context} tokens"
        )
    pool = plan_kv_pool(
        loaded.spec,
        hw,
        DTYPES[args.dtype],
        seq_len=args.prompt_len + args.gen_len,
        num_seqs=args.batch,
        job=f"--batch {args.batch} x (--prompt-len {args.prompt_len} + --gen-len {args.gen_len})",
    )
    prompts = bench_prompts(args.batch, args.prompt_len, loaded.spec.vocab_size)
    _note(show, "timing tttv2")
    # the copy bandwidth right before and right after our run: on shared machines it moves
    # between minutes, and the roofline is only as good as its denominator
    copy_bytes = args.bandwidth_mib * 1024**2
    bandwidth_before = stream_bandwidth(device, copy_bytes)
    ours = bench_ours(loaded, prompts, args.gen_len, device, full_warmup=args.compile, pool=pool)
    ours.load_s = load_s
    decode_path = _decode_path(loaded.model)
    bandwidth_after = stream_bandwidth(device, copy_bytes)
    bandwidth = (bandwidth_before + bandwidth_after) / 2
    roof = decode_roofline(
        loaded.model, loaded.spec, args.batch, args.prompt_len, args.gen_len, bandwidth
    )
    del loaded
    gc.collect()
    _note(show, "timing transformers")
    start = time.perf_counter()
    hf_model = load_hf(checkpoint, DTYPES[args.dtype], device)
    load_s = time.perf_counter() - start
    hf = bench_hf(hf_model, prompts, args.gen_len, device)
    hf.load_s = load_s
    del hf_model
    ratio = {
        "prefill_tokens_per_s": ratio_of(ours.prefill_tokens_per_s, hf.prefill_tokens_per_s),
        "ttft_s": ratio_of(ours.ttft_s, hf.ttft_s),
        "decode_tokens_per_s": ratio_of(ours.decode_tokens_per_s, hf.decode_tokens_per_s),
        "peak_memory_bytes": ratio_of(ours.peak_memory_bytes, hf.peak_memory_bytes),
        "load_s": ratio_of(ours.load_s, hf.load_s),
        "warmup_s": ratio_of(ours.warmup_s, hf.warmup_s),
    }
    roofline = roof.to_dict() | {
        "bandwidth_samples_bytes_per_s": [bandwidth_before, bandwidth_after],
        "ours_fraction": ratio_of(ours.decode_tokens_per_s, roof.decode_tokens_per_s),
        "hf_fraction": ratio_of(hf.decode_tokens_per_s, roof.decode_tokens_per_s),
    }
    config = {
        "checkpoint": str(checkpoint),
        "dtype": args.dtype,
        "device": str(device),
        "strategy": args.strategy,
        "batch": args.batch,
        "prompt_len": args.prompt_len,
        "gen_len": args.gen_len,
        "compile": args.compile,
        "torch_threads": torch.get_num_threads(),
        "kv_cache": {"block_size": pool.block_size, "num_blocks": pool.num_blocks},
        "decode_path": decode_path,
        "host": host_facts(hw, DTYPES[args.dtype]),
    }
    if args.json:
        print(
            json.dumps(
                {
                    "config": config,
                    "ours": ours.to_dict(),
                    "hf": hf.to_dict(),
                    "ratio": ratio,
                    "roofline": roofline,
                }
            )
        )
        return 0
    print(f"checkpoint {checkpoint}  dtype {args.dtype}  device {device}  batch {args.batch}  "
          f"prompt {args.prompt_len}  generate {args.gen_len}"
          f"{'  decode compiled (torch.compile)' if args.compile else ''}")  # fmt: skip
    print(format_host(config["host"]))
    if decode_path is not None:
        last = decode_path["last_pass_eager_because"]
        print(f"decode path: {decode_path['kind']} ({decode_path['reason']})"
              f"{f'; last pass ran op by op: {last}' if last else ''}")  # fmt: skip
    print(f"{'':24}{'tttv2':>14}{'transformers':>14}{'ratio':>9}")
    rows = [
        ("prefill tokens/s", ours.prefill_tokens_per_s, hf.prefill_tokens_per_s, "{:.1f}"),
        ("time to first token ms", ours.ttft_s * 1e3, hf.ttft_s * 1e3, "{:.2f}"),
        ("decode tokens/s", ours.decode_tokens_per_s, hf.decode_tokens_per_s, "{:.1f}"),
        ("peak memory MiB", _mib(ours.peak_memory_bytes), _mib(hf.peak_memory_bytes), "{:.1f}"),
        ("warm-up: load s", ours.load_s, hf.load_s, "{:.2f}"),
        ("warm-up: first run s", ours.warmup_s, hf.warmup_s, "{:.2f}"),
    ]
    for label, a, b, fmt in rows:
        r = ratio_of(a, b)
        print(f"{label:<24}{_fmt(a, fmt):>14}{_fmt(b, fmt):>14}{_fmt(r, '{:.2f}x'):>9}")
    print(
        f"roofline: {roof.bytes_per_decode_step / 1e6:.2f} MB per decode step "
        f"(weights {roof.weight_bytes / 1e6:.2f} MB + KV {roof.kv_bytes_per_step / 1e6:.2f} MB) at "
        f"{bandwidth / 1e9:.1f} GB/s (a torch copy right before and after our run: "
        f"{bandwidth_before / 1e9:.1f} and {bandwidth_after / 1e9:.1f}) -> {roof.decode_tokens_per_s:.1f} tokens/s; "
        f"tttv2 reaches {_fmt(roofline['ours_fraction'], '{:.1%}')}, "
        f"transformers {_fmt(roofline['hf_fraction'], '{:.1%}')}"
    )
    return 0


def _decode_path(model: object) -> dict[str, object] | None:
    """The model's decode path (``TransformerStack.decode_path``) and why its last decode pass
    ran op by op, if it did; None for models without one."""
    path = getattr(model, "decode_path", None)
    if path is None:
        return None
    return {
        "kind": path.kind,
        "reason": path.reason,
        "last_pass_eager_because": getattr(model, "fused_decode_reason", None)
        if path.fused
        else None,
    }


def _mib(n: int | None) -> float | None:
    return n / 1024**2 if n is not None else None


def _fmt(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def _note(show: bool, text: str) -> None:
    if show:
        print(f"{text}...", file=sys.stderr)
