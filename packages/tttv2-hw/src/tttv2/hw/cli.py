"""``tttv2-hw``: print the detected (or a forced) device and the parameters chosen for each
operation and execution mode, as tables or as JSON; with ``--spec`` also a memory plan for
that model. ``tttv2 hw`` calls :func:`main` too, with ``prog="tttv2 hw"``.

Errors are one line on stderr, ``<prog>: error: ...``, with exit status 2: bad options and
values as well as unknown profiles, modes and unreadable files."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn, cast

from tttv2.core.errors import InputError, TTTv2Error
from tttv2.core.modes import ExecutionMode
from tttv2.core.specs import ModelSpec
from tttv2.hw.device.config import DeviceConfig
from tttv2.hw.device.profiles import profile_names
from tttv2.hw.kernels import backend_preference, get_kernel
from tttv2.hw.kernels.decode_layers import DecodeChoice, DecodeLayersKernel, choose_decode_path
from tttv2.hw.kernels.half_gemm import HALF_DTYPES, GemmChoice, select_half_gemm
from tttv2.hw.kernels.linear import UPCAST_MIN_ROWS
from tttv2.hw.kernels.native import native_status
from tttv2.hw.memory.planner import MemoryPlan, plan_memory
from tttv2.hw.params import OPS
from tttv2.hw.params.types import OpParams

GB = 10**9
PROG = "tttv2-hw"
EXIT_BAD_INPUT = 2


class UsageError(InputError, TTTv2Error, ValueError):
    """The command line itself is wrong (unknown option, bad value)."""


class _Parser(argparse.ArgumentParser):
    """Usage errors raise :class:`UsageError` (one line, no usage dump) instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def positive_gb(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is invalid: expected a number of GB > 0")
    return value


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description="Show the device TTTv2 detects and the parameters it picks per operation and mode.",
        epilog="On a CPU it also lists, with the reasons, the instruction-set variant each native "
        "kernel runs as (avx512_bf16, avx512f, avx2, portable) and the GEMM variant of products of "
        "8+ half-precision rows (amx, avx512_bf16, neon_bf16, fp32_upcast). Environment: "
        "TTTV2_DEVICE_PROFILE forces a profile (as --profile does for this command), "
        "TTTV2_NATIVE_KERNELS=0 turns the native kernels off, TTTV2_NATIVE_EMULATE=avx512f|avx512_bf16 "
        "builds those variants emulated on AVX2 (for tests: their logic, not their speed).",
    )
    parser.add_argument(
        "--profile", metavar="NAME", help="force a device profile (see --list-profiles)"
    )
    parser.add_argument("--params", metavar="FILE", help="TOML/JSON file of parameter overrides")
    parser.add_argument(
        "--op", action="append", choices=OPS, help="only this operation (repeatable)"
    )
    parser.add_argument(
        "--mode", action="append", metavar="MODE", help="only this execution mode (repeatable)"
    )
    parser.add_argument(
        "--spec",
        metavar="FILE",
        help="ModelSpec JSON (ModelSpec.to_json()): adjust 'model' params and plan memory",
    )
    parser.add_argument(
        "--memory-gb",
        type=positive_gb,
        metavar="GB",
        help="plan memory for this many GB (10^9 bytes)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--list-profiles", action="store_true", help="print the known profile names and exit"
    )
    return parser


def collect(
    config: DeviceConfig, ops: Sequence[str], modes: Sequence[str], spec: ModelSpec | None = None
) -> dict[str, dict[str, OpParams]]:
    """Parameters per op and mode; ``spec`` adjusts the whole-model ("model") ones."""
    return {
        op: {
            mode: config.get_optimal_params(op, mode, spec if op == "model" else None)
            for mode in modes
        }
        for op in ops
    }


def read_spec(path: str) -> ModelSpec:
    try:
        spec = ModelSpec.from_json(Path(path).read_text())
    except OSError as exc:
        raise TTTv2Error(f"--spec {path}: {exc}") from exc
    except ValueError as exc:  # JSON syntax errors and SpecError
        raise TTTv2Error(f"--spec {path}: not a ModelSpec JSON: {exc}") from exc
    return spec


def to_json(
    config: DeviceConfig, table: dict[str, dict[str, OpParams]], plan: MemoryPlan | None = None
) -> dict[str, Any]:
    return {
        "device": config.to_dict(),
        "kernel_backends": backend_preference(config.device_type),
        "params": {
            op: {mode: p.to_dict() for mode, p in by_mode.items()} for op, by_mode in table.items()
        },
        "memory_plan": plan.to_dict() if plan else None,
        "native_kernels": native_status(config) if config.device_type == "cpu" else None,
        "half_gemm": (
            {str(c.dtype).removeprefix("torch."): c.to_dict() for c in half_gemm_choices(config)}
            if config.device_type == "cpu"
            else None
        ),
        "decode_path": _decode_path_json(decode_path(config)),
    }


def decode_path(config: DeviceConfig) -> DecodeChoice:
    """The decode path a model gets on this device by tttv2-hw's knobs and kernel registry
    (``TransformerStack.decode_path`` follows the same rule; a caller may override it)."""
    params = config.get_optimal_params("model", ExecutionMode.DECODE)
    return choose_decode_path(
        config.torch_device,
        compile=bool(getattr(params, "compile", False)),
        fuse=bool(getattr(params, "fuse_decode_layers", True)),
        # the registry types every op's kernel as Callable[..., Any]; this op's is a DecodeLayersKernel
        kernel=cast(DecodeLayersKernel, get_kernel("decode_layers", config.torch_device)),
    )


def _decode_path_json(choice: DecodeChoice) -> dict[str, Any]:
    return {"kind": choice.kind, "reason": choice.reason, "fuse": choice.fuse}


def format_device(config: DeviceConfig) -> str:
    cpu = config.cpu
    rows = [
        ("profile", f"{config.profile} ({config.source})"),
        ("device", f"{config.name} [{config.device_type}, torch device {config.torch_device}]"),
        ("devices", str(config.num_devices)),
        (
            "memory",
            f"{config.memory_available_bytes / GB:.2f} GB available of {config.memory_total_bytes / GB:.2f} GB",
        ),
        ("bf16 / fp8 native", f"{config.bf16_native} / {config.fp8_native}"),
        ("preferred dtype", config.preferred_dtype),
        ("host CPU", f"{cpu.model_name}, {cpu.usable_cores} usable of {cpu.logical_cores} cores"),
        ("CPU ISA", f"{', '.join(cpu.isa) or 'baseline'} (torch: {cpu.torch_capability})"),
        (
            "CPU caches",
            ", ".join(f"{k} {v // 1024} KiB" for k, v in cpu.caches.items()) or "unknown",
        ),
    ]
    for gpu in config.cuda:
        rows.append(
            (
                f"cuda:{gpu.index}",
                f"{gpu.name}, sm_{gpu.compute_capability[0]}{gpu.compute_capability[1]}, "
                f"{gpu.sm_count} SMs, {gpu.memory_total_bytes / GB:.1f} GB, bf16 {gpu.bf16}, fp8 {gpu.fp8}",
            )
        )
    if config.tenstorrent:
        tt = config.tenstorrent
        rows.append(
            (
                "tenstorrent",
                f"{tt.product}: {tt.num_chips} x {tt.arch.name}, mesh {tt.mesh_shape}, "
                f"grid {tt.core_grid[0]}x{tt.core_grid[1]}, {tt.dram_banks} DRAM banks, "
                f"shard width {tt.dram_shard_grid_width}, tile {tt.arch.tile_size}, "
                f"prefill cut-off {tt.arch.prefill_len_cutoff}",
            )
        )
    rows.append(("kernel backends", " > ".join(backend_preference(config.device_type))))
    status = native_status(config) if config.device_type == "cpu" else None
    if status is not None:
        rows.append(("native kernels", format_native(status)))
    choice = decode_path(config)
    rows.append(("decode path", f"{choice.kind}: {choice.reason}"))
    width = max(len(k) for k, _ in rows)
    text = "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
    if status is not None:
        text += (
            "\n\n" + format_variants(status) + "\n\n" + format_half_gemm(half_gemm_choices(config))
        )
    return text


def format_variants(status: dict[str, dict[str, Any]]) -> str:
    """Per native kernel, the ISA variant it runs as here and why (``portable``: PyTorch's
    kernels; ``(emulated)``: its code paths by SIMDe on AVX2, for tests), then why each
    better variant was passed over."""
    cells = []
    for name, s in status.items():
        passed = cast(dict[str, str], s.get("passed_over") or {})
        shown = str(s.get("variant", "")) + (" (emulated)" if s.get("emulated") else "")
        cells.append(
            [name, shown, _with_passed_over(str(s.get("variant_reason", "")), passed.items())]
        )
    return _aligned(["native kernel", "ISA variant", "why"], cells)


def half_gemm_choices(config: DeviceConfig) -> list[GemmChoice]:
    """Per half-precision dtype, how its many-row products run under ``config``'s profile."""
    return [
        select_half_gemm(dtype, profile=config.profile, profile_isa=config.cpu.isa)
        for dtype in HALF_DTYPES
    ]


def format_half_gemm(choices: Sequence[GemmChoice]) -> str:
    """Per half-precision dtype, the GEMM variant of products of many rows (prefill,
    batched decode) and why, then why each better variant was passed over."""
    cells = [
        [str(c.dtype).removeprefix("torch."), c.variant.name, c.variant.how,
         _with_passed_over(c.reason, c.passed_over)]
        for c in choices
    ]  # fmt: skip
    return _aligned([f"GEMM, {UPCAST_MIN_ROWS}+ rows", "variant", "runs", "why"], cells)


def _with_passed_over(why: str, passed: Iterable[tuple[str, str]]) -> str:
    """``why (passed over v1: r1; v2: r2)``, or ``why`` when nothing was passed over."""
    shown = "; ".join(f"{v}: {r}" for v, r in passed)
    return f"{why} (passed over {shown})" if shown else why


def _aligned(header: list[str], cells: list[list[str]]) -> str:
    """A text table: every column but the last padded to its widest cell, a rule of dashes
    under the header (``---`` over the last column)."""
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header) - 1)]
    rule = ["-" * w for w in widths] + ["---"]
    return "\n".join(
        "  ".join([*(cell.ljust(w) for cell, w in zip(r, widths, strict=False)), r[-1]]).rstrip()
        for r in [header, rule, *cells]
    )


def format_native(status: dict[str, dict[str, Any]]) -> str:
    """``skinny_linear, rms_norm (cached, 0.01 s)`` or the reason none is available."""
    ready = [name for name, s in status.items() if s["available"]]
    if not ready:
        reasons = {str(s["reason"]).splitlines()[0] for s in status.values()}
        return "none (" + "; ".join(sorted(reasons)) + ")"
    compiled = any(status[n]["compiled"] for n in ready)
    seconds = sum(float(status[n]["seconds"]) for n in ready)
    missing = [n for n in status if n not in ready]
    text = f"{', '.join(ready)} ({'compiled now' if compiled else 'cached'}, {seconds:.2f} s)"
    return text + (f"; unavailable: {', '.join(missing)}" if missing else "")


def format_table(op: str, by_mode: dict[str, OpParams]) -> str:
    modes = list(by_mode)
    first = next(iter(by_mode.values()))
    fields = [f.name for f in dataclasses.fields(first) if f.name not in ("mode", "device")]
    cells = [[name, *(str(getattr(by_mode[m], name)) for m in modes)] for name in fields]
    header = [op, *modes]
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in cells)])


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """Run the command on ``argv`` (default: ``sys.argv[1:]``); ``prog`` names it in usage
    and error lines. Returns the exit status (``--help`` exits through ``SystemExit(0)``)."""
    try:
        args = build_parser(prog).parse_args(argv)
    except UsageError as exc:
        return _report(prog, exc)
    if args.list_profiles:
        print("\n".join(profile_names()))
        return 0
    try:
        modes = (
            [ExecutionMode(m).value for m in args.mode]
            if args.mode
            else [m.value for m in ExecutionMode.all()]
        )
        config = DeviceConfig.auto_detect(args.profile, params=args.params)
        spec = read_spec(args.spec) if args.spec else None
        table = collect(config, args.op or OPS, modes, spec)
        memory = int(args.memory_gb * GB) if args.memory_gb else None
        plan = plan_memory(spec, device=config, memory_bytes=memory) if spec else None
    except TTTv2Error as exc:
        return _report(prog, exc)
    if args.json:
        print(json.dumps(to_json(config, table, plan), indent=2, default=str))
        return 0
    print(format_device(config))
    for op, by_mode in table.items():
        print()
        print(format_table(op, by_mode))
    if plan is not None:
        print()
        print("memory plan: " + plan.summary())
    return 0


def _report(prog: str, exc: BaseException) -> int:
    message = " ".join(str(exc).split())
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
