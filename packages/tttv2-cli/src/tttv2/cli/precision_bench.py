"""``tttv2 bench --precision PRESET``: the checkpoint at ``--dtype`` (the baseline) against
the same checkpoint with a precision preset's formats applied, in one run.

Both models are loaded side by side and timed alternately, ``--repeats`` times (each a
warm-up and a measured generation, as ``tttv2 bench`` times one model), so a machine
slowing down moves both; the table shows medians, and the ratio is the median of the
per-repeat ratios (preset / baseline), all printed. Each gets its own decode roofline: the
bytes its weights take as stored (the ``int8`` preset: one byte per weight plus a float32
scale per output channel; block-float presets are rounded in place on CPUs and stored as
``--dtype``) plus the KV cache, over the bandwidth measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tttv2.cli.errors import UsageError
from tttv2.cli.host import format_host, host_facts
from tttv2.cli.kv_pool import plan_kv_pool
from tttv2.cli.loading import DTYPES, load
from tttv2.cli.measure import stream_bandwidth
from tttv2.cli.ratios import median_present, per_repeat_ratios
from tttv2.cli.ratios import ratio as ratio_of
from tttv2.cli.roofline import Roofline, decode_roofline
from tttv2.cli.throughput import Throughput, bench_ours, bench_prompts
from tttv2.hw import DeviceConfig

FIELDS = ("prefill_tokens_per_s", "ttft_s", "decode_tokens_per_s", "peak_memory_bytes")


@dataclass
class Contender:
    name: str
    loaded: Any
    load_s: float
    runs: list[Throughput]


def run_precision_bench(
    args: argparse.Namespace,
    checkpoint: Path,
    device: torch.device,
    hw: DeviceConfig,
    show: bool,
    note: Callable[[bool, str], None],
    decode_path: Callable[[object], dict[str, object] | None],
) -> int:
    from tttv2.blocks import apply_precision_policy

    if args.compile:
        raise UsageError("--precision does not combine with --compile")
    contenders = []
    for name in (args.dtype, args.precision):
        note(show, f"loading {name}")
        start = time.perf_counter()
        loaded = load(
            checkpoint, args.dtype, device, args.strategy, show_progress=show, capture_decode=True,
            allow_nonfinite_weights=args.allow_nonfinite_weights,
        )  # fmt: skip
        formats = (
            apply_precision_policy(loaded.model, args.precision) if name == args.precision else None
        )
        contenders.append(Contender(name, loaded, time.perf_counter() - start, []))
        if formats is not None:
            note(show, f"{args.precision}: weights in {formats}")
    spec = contenders[0].loaded.spec
    if args.prompt_len + args.gen_len > contenders[0].loaded.max_context:
        raise UsageError(
            f"--prompt-len {args.prompt_len} + --gen-len {args.gen_len} exceeds the model's context "
            f"of {contenders[0].loaded.max_context} tokens"
        )
    pool = plan_kv_pool(
        spec, hw, DTYPES[args.dtype], seq_len=args.prompt_len + args.gen_len, num_seqs=args.batch,
        job=f"--batch {args.batch} x (--prompt-len {args.prompt_len} + --gen-len {args.gen_len})",
    )  # fmt: skip
    prompts = bench_prompts(args.batch, args.prompt_len, spec.vocab_size)
    for r in range(args.repeats):
        order = contenders if r % 2 == 0 else contenders[::-1]
        for c in order:
            note(show, f"repeat {r + 1}/{args.repeats}: timing {c.name}")
            c.runs.append(bench_ours(c.loaded, prompts, args.gen_len, device, pool=pool))
    bandwidth = stream_bandwidth(device, args.bandwidth_mib * 1024**2)
    roofs = {
        c.name: decode_roofline(
            c.loaded.model, spec, args.batch, args.prompt_len, args.gen_len, bandwidth
        )
        for c in contenders
    }
    base, prec = contenders
    medians = {
        c.name: {f: median_present([getattr(t, f) for t in c.runs]) for f in FIELDS}
        for c in contenders
    }
    per_repeat = {
        f: per_repeat_ratios([getattr(p, f) for p in prec.runs], [getattr(b, f) for b in base.runs])
        for f in FIELDS
    }
    ratio = {f: median_present(v) for f, v in per_repeat.items()}
    fractions = {c.name: ratio_of(medians[c.name]["decode_tokens_per_s"], roofs[c.name].decode_tokens_per_s)
                 for c in contenders}  # fmt: skip
    config = {
        "checkpoint": str(checkpoint), "dtype": args.dtype, "precision": args.precision, "device": str(device),
        "strategy": args.strategy, "batch": args.batch, "prompt_len": args.prompt_len, "gen_len": args.gen_len,
        "repeats": args.repeats, "torch_threads": torch.get_num_threads(),
        "kv_cache": {"block_size": pool.block_size, "num_blocks": pool.num_blocks},
        "decode_path": {c.name: decode_path(c.loaded.model) for c in contenders},
        "host": host_facts(hw, DTYPES[args.dtype]),
    }  # fmt: skip
    if args.json:
        out = {
            "config": config,
            "baseline": {"median": medians[base.name], "runs": [t.to_dict() for t in base.runs], "load_s": base.load_s},
            "precision": {"median": medians[prec.name], "runs": [t.to_dict() for t in prec.runs], "load_s": prec.load_s},
            "ratio": ratio,
            "per_repeat_ratio": per_repeat,
            "roofline": {c.name: _roof_dict(roofs[c.name], fractions[c.name]) for c in contenders},
        }  # fmt: skip
        print(json.dumps(out))
        return 0
    print(f"checkpoint {checkpoint}  dtype {args.dtype}  precision {args.precision} against {args.dtype}  "
          f"device {device}  batch {args.batch}  prompt {args.prompt_len}  generate {args.gen_len}  "
          f"repeats {args.repeats} (alternating)")  # fmt: skip
    print(format_host(config["host"]))
    for c in contenders:
        path = config["decode_path"][c.name]
        if path is not None:
            last = path["last_pass_eager_because"]
            print(f"decode path ({c.name}): {path['kind']} ({path['reason']})"
                  f"{f'; last pass ran op by op: {last}' if last else ''}")  # fmt: skip
    print(f"{'':26}{base.name:>12}{prec.name:>12}{'ratio':>9}")
    rows = [
        ("prefill tokens/s", "prefill_tokens_per_s", 1.0, "{:.1f}"),
        ("time to first token ms", "ttft_s", 1e3, "{:.2f}"),
        ("decode tokens/s", "decode_tokens_per_s", 1.0, "{:.1f}"),
        ("peak memory MiB", "peak_memory_bytes", 1 / 1024**2, "{:.1f}"),
    ]
    for label, f, k, fmt in rows:
        a, b = (medians[c.name][f] for c in contenders)
        print(
            f"{label:<26}{_fmt(a, k, fmt):>12}{_fmt(b, k, fmt):>12}{_fmt(ratio[f], 1.0, '{:.2f}x'):>9}"
        )
    rb, rp = roofs[base.name], roofs[prec.name]
    print(f"{'weights read per step MB':<26}{rb.weight_bytes / 1e6:>12.2f}{rp.weight_bytes / 1e6:>12.2f}"
          f"{rp.weight_bytes / rb.weight_bytes:>8.2f}x")  # fmt: skip
    print(f"{'roofline decode tokens/s':<26}{rb.decode_tokens_per_s:>12.1f}{rp.decode_tokens_per_s:>12.1f}"
          f"{rp.decode_tokens_per_s / rb.decode_tokens_per_s:>8.2f}x")  # fmt: skip
    print(f"{'roofline fraction':<26}{_fmt(fractions[base.name], 100, '{:.1f}%'):>12}"
          f"{_fmt(fractions[prec.name], 100, '{:.1f}%'):>12}")  # fmt: skip
    shown = ", ".join(_fmt(r, 1.0, "{:.2f}") for r in per_repeat["decode_tokens_per_s"])
    print(
        f"decode ratio per repeat: {shown}; bandwidth {bandwidth / 1e9:.1f} GB/s (torch copy, this run)"
    )
    return 0


def _roof_dict(roof: Roofline, fraction: float | None) -> dict[str, Any]:
    return roof.to_dict() | {"fraction": fraction}


def _fmt(value: float | None, k: float, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value * k)
