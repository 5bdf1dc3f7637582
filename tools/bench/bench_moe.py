"""One MoE layer at real sizes: TTTv2's ``MoE`` block against transformers' sparse-MoE blocks
and against the active-bytes memory roofline, measured in the same run.

Shapes (one layer each, bf16 by default, random weights, nothing downloaded):

* ``mixtral``: Mixtral-8x7B, hidden 4096, expert intermediate 14336, 8 experts, top-2
  (2.8 GB of expert weights), against ``MixtralSparseMoeBlock``;
* ``qwen3``: Qwen3-30B-A3B, hidden 2048, moe_intermediate 768, 128 experts, top-8,
  ``norm_topk_prob`` (1.2 GB), against ``Qwen3MoeSparseMoeBlock``.

Both blocks use the same weights (ours are views into transformers' stacked expert tensors,
so one copy is in memory). Contenders, per phase (decode of ``--batches`` tokens, prefill of
``--prefill`` tokens):

* ``ours``      -- ``tttv2.blocks.MoE``: router, top-k, then at decode all chosen experts in
                   one call of tttv2-hw's ``routed_experts`` kernel (native on CPU);
* ``per-expert``-- the same block made to run each chosen expert as a ``FeedForward``
                   module (a no-op forward hook on every expert): its path before the
                   ``routed_experts`` kernel, and its path for prefill;
* ``hf eager``  -- transformers' block with ``experts_implementation="eager"`` (a loop
                   over the experts hit);
* ``hf grouped``-- the same block with ``"grouped_mm"``, what a transformers model loaded
                   with default arguments uses.

Every timed step gets a different input (``--steps`` distinct hidden states, the same for
every contender), so successive decode steps pick different experts, as real decode does,
and an expert read by one step is not found in cache by the next. The roofline of a step
is the bytes it must read -- the router plus every expert chosen by at least one of its
tokens (gate, up and down) -- over the memory bandwidth of a large torch copy (STREAM
"copy", ``tttv2.cli.measure.stream_bandwidth``) measured right before each phase. ``roofline`` in
the table is that time over the measured time (1.0 = reading only the needed bytes at copy
speed). ``speedup`` is a transformers time over ours. ``max|diff|`` compares ours with
``hf eager`` on the first input. Nothing here asserts a time.

    uv run python tools/bench/bench_moe.py
    uv run python tools/bench/bench_moe.py --models qwen3 --batches 1 --prefill 0 --steps 40
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from tttv2.blocks import MoE
from tttv2.cli.measure import stream_bandwidth
from tttv2.core import FeedForwardSpec, MoESpec
from tttv2.hw.device.cpu import detect_cpu


@dataclass(frozen=True)
class Shape:
    name: str
    hidden: int
    inter: int
    experts: int
    top_k: int
    renormalize: bool
    round_routing_weights: bool  # transformers' Qwen routers round the top-k weights to bf16


SHAPES = {
    "mixtral": Shape("Mixtral-8x7B", 4096, 14336, 8, 2, True, False),
    "qwen3": Shape("Qwen3-30B-A3B", 2048, 768, 128, 8, True, True),
}


def hf_block(key: str, shape: Shape, implementation: str) -> torch.nn.Module:
    """transformers' sparse-MoE block for ``shape`` on the meta device (weights set later)."""
    if key == "mixtral":
        from transformers import MixtralConfig
        from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

        config = MixtralConfig(
            hidden_size=shape.hidden,
            intermediate_size=shape.inter,
            num_local_experts=shape.experts,
            num_experts_per_tok=shape.top_k,
        )
        cls = MixtralSparseMoeBlock
    else:
        from transformers import Qwen3MoeConfig
        from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

        config = Qwen3MoeConfig(
            hidden_size=shape.hidden,
            moe_intermediate_size=shape.inter,
            num_experts=shape.experts,
            num_experts_per_tok=shape.top_k,
            norm_topk_prob=shape.renormalize,
        )
        cls = Qwen3MoeSparseMoeBlock
    config._experts_implementation = implementation
    with torch.device("meta"):
        return cls(config).eval()


def build(
    key: str, shape: Shape, dtype: torch.dtype, seed: int
) -> tuple[MoE, dict[str, torch.nn.Module]]:
    """Our block and transformers' (eager, grouped_mm) sharing one set of random weights."""
    g = torch.Generator().manual_seed(seed)
    e, h, i = shape.experts, shape.hidden, shape.inter
    router = (torch.randn(e, h, generator=g) * h**-0.5).to(dtype)
    gate_up = torch.empty(e, 2 * i, h, dtype=dtype)
    down = torch.empty(e, h, i, dtype=dtype)
    for x in range(e):  # one expert at a time: no fp32 copy of the whole layer
        gate_up[x].copy_(torch.randn(2 * i, h, generator=g) * h**-0.5)
        down[x].copy_(torch.randn(h, i, generator=g) * i**-0.5)
    spec = MoESpec(
        hidden_dim=h,
        num_experts=e,
        top_k=shape.top_k,
        renormalize=shape.renormalize,
        round_routing_weights=shape.round_routing_weights,
        expert=FeedForwardSpec(hidden_dim=h, intermediate_dim=i),
    )
    with torch.device("meta"):
        ours = MoE(spec).eval()
    ours.gate.weight = torch.nn.Parameter(router, requires_grad=False)
    for x, expert in enumerate(ours.experts):
        expert.gate_proj.weight = torch.nn.Parameter(gate_up[x, :i], requires_grad=False)
        expert.up_proj.weight = torch.nn.Parameter(gate_up[x, i:], requires_grad=False)
        expert.down_proj.weight = torch.nn.Parameter(down[x], requires_grad=False)
    theirs = {}
    for label, impl in (("hf eager", "eager"), ("hf grouped", "grouped_mm")):
        block = hf_block(key, shape, impl)
        block.gate.weight = torch.nn.Parameter(router, requires_grad=False)
        block.experts.gate_up_proj = torch.nn.Parameter(gate_up, requires_grad=False)
        block.experts.down_proj = torch.nn.Parameter(down, requires_grad=False)
        theirs[label] = block
    return ours, theirs


def active_bytes(ours: MoE, x: torch.Tensor) -> int:
    """Bytes a forward of ``x`` must read: the router and every expert some token chose."""
    with torch.inference_mode():
        _, chosen = torch.topk(ours.gate(x).float(), ours.spec.top_k, dim=-1)
    per_expert = sum(p.numel() * p.element_size() for p in ours.experts[0].parameters())
    router = ours.gate.weight.numel() * ours.gate.weight.element_size()
    return router + per_expert * len(set(chosen.flatten().tolist()))


def timed(
    fn: Callable[[torch.Tensor], object], inputs: list[torch.Tensor], warmup: int = 2
) -> list[float]:
    """Seconds of ``fn(x)`` for each input, after ``warmup`` untimed calls."""
    with torch.inference_mode():
        for x in inputs[:warmup]:
            fn(x)
        times = []
        for x in inputs:
            t0 = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - t0)
    return times


def bench_phase(
    ours: MoE, theirs: dict[str, torch.nn.Module], inputs: list[torch.Tensor], bandwidth: float
) -> dict:
    """Mean seconds per step of each contender over ``inputs``, the roofline, the max diff."""
    result: dict = {"tokens": inputs[0].shape[0]}
    roof = [active_bytes(ours, x) / bandwidth for x in inputs]
    result["roofline_s"] = statistics.mean(roof)
    result["active_bytes"] = statistics.mean(active_bytes(ours, x) for x in inputs)
    result["ours_s"] = statistics.mean(timed(ours, inputs))
    hooks = [expert.register_forward_hook(lambda *_: None) for expert in ours.experts]
    try:  # hooked experts run as modules: the expert-by-expert path (before routed_experts)
        result["ours_per_expert_s"] = statistics.mean(timed(ours, inputs))
    finally:
        for hook in hooks:
            hook.remove()
    for label, block in theirs.items():
        try:
            result[label] = statistics.mean(timed(lambda x, b=block: b(x[None]), inputs))
        except Exception as error:  # noqa: BLE001  a transformers path that does not run on this host
            result[label] = None
            result[f"{label} error"] = f"{type(error).__name__}: {error}"[:200]
    with torch.inference_mode():
        ref = theirs["hf eager"](inputs[0][None])[0].float()
        result["max_abs_diff"] = (ours(inputs[0]).float() - ref).abs().max().item()
        result["max_abs_ref"] = ref.abs().max().item()
    return result


def row(name: str, r: dict) -> str:
    """One table row of a phase's result."""

    def ms(s: float | None) -> str:
        return f"{s * 1e3:.2f}" if s else "n/a"

    def ratio(s: float | None) -> str:
        return f"{s / r['ours_s']:.2f}x" if s else "n/a"

    return (
        f"{name:<14} {r['phase']:<12} {r['active_bytes'] / 1e6:>9.0f} {ms(r['roofline_s']):>8} "
        f"{ms(r['ours_s']):>8} {ms(r['ours_per_expert_s']):>10} {ms(r['hf eager']):>9} {ms(r['hf grouped']):>10} "
        f"{ratio(r['hf eager']) + '/' + ratio(r['hf grouped']):>15} "
        f"{r['roofline_s'] / r['ours_s']:>8.2f} {r['max_abs_diff']:>10.2g} "
        f"{r['bandwidth_bytes_per_s'] / 1e9:>9.1f}"
    )


def host_line() -> str:
    cpu = detect_cpu()
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (
        f"host: {cpu.model_name or 'unknown CPU'}, {cpu.usable_cores} usable cores, ISA {'/'.join(cpu.isa)}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads{load}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Columns: ms per step (mean over --steps distinct inputs); speedup = transformers ms / ours ms; "
        "roofline = (active bytes / copy bandwidth) / ours ms. See the module docstring for details.",
    )
    parser.add_argument(
        "--models", default="mixtral,qwen3", help="comma list of: " + ", ".join(SHAPES)
    )
    parser.add_argument(
        "--batches", default="1,8", help="decode batch sizes (tokens per step), comma list"
    )
    parser.add_argument("--prefill", type=int, default=512, help="prefill tokens (0: skip prefill)")
    parser.add_argument(
        "--steps", type=int, default=20, help="timed steps per phase, each a different input"
    )
    parser.add_argument(
        "--prefill-steps", type=int, default=3, help="timed steps for the prefill phase"
    )
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's choice)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    keys = [k.strip() for k in args.models.split(",") if k.strip()]
    unknown = [k for k in keys if k not in SHAPES]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; choose from {', '.join(SHAPES)}")
    phases = [("decode", int(b), args.steps) for b in args.batches.split(",") if b.strip()]
    if args.prefill > 0:
        phases.append(("prefill", args.prefill, args.prefill_steps))

    print(host_line())
    print(
        "copy bandwidth: a torch copy of 512 MiB (read + write), measured right before each phase"
    )
    header = (
        f"{'model':<14} {'phase':<12} {'active MB':>9} {'roofline':>8} {'ours':>8} {'per-expert':>10} {'hf eager':>9} "
        f"{'hf grouped':>10} {'speedup':>15} {'roofline':>8} {'max|diff|':>10} {'copy GB/s':>9}"
    )
    units = (
        f"{'':<14} {'':<12} {'':>9} {'ms':>8} {'ms':>8} {'ms':>10} {'ms':>9} {'ms':>10} "
        f"{'eager/grouped':>15} {'fraction':>8} {'':>10} {'':>9}"
    )
    records = []
    print(header)
    print(units)
    for key in keys:
        shape = SHAPES[key]
        ours, theirs = build(key, shape, dtype, args.seed)
        g = torch.Generator().manual_seed(args.seed + 1)
        for phase, tokens, steps in phases:
            inputs = [
                torch.randn(tokens, shape.hidden, generator=g).to(dtype) for _ in range(steps)
            ]
            # measured per phase: on a shared machine the bandwidth drifts over a long run
            bandwidth = stream_bandwidth(torch.device("cpu"), nbytes=512 * 1024**2)
            r = bench_phase(ours, theirs, inputs, bandwidth)
            r.update(model=shape.name, phase=f"{phase} {tokens}", bandwidth_bytes_per_s=bandwidth)
            records.append(r)
            print(row(shape.name, r), flush=True)
            for label in theirs:
                if f"{label} error" in r:
                    print(f"  {label} did not run: {r[f'{label} error']}")
        del ours, theirs
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"host": host_line(), "results": records}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
