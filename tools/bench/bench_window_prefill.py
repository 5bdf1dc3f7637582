"""Sliding-window prefill: blocked ``prefill_attention`` vs the whole-[S, S]-mask computation
it replaced (tttv2-hw 3.0.0), time and peak memory, each run in its own process.

    uv run python tools/bench/bench_window_prefill.py                     # 16k/4096 and 32k/512
    uv run python tools/bench/bench_window_prefill.py --cases 8192:4096 --heads 8 --kv-heads 2

Time is the fastest of ``--repeats`` calls in one process (the first call pays one-time
costs). Peak memory is the process's peak RSS minus its RSS just before the first call
(inputs made), so it is what the attention itself allocated. Prints the ratios; asserts
nothing about time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

_CHILD = """
import json, resource, sys, time
import torch
import torch.nn.functional as F
from tttv2.hw.kernels import prefill_attention

def whole_mask(q, k, v, scale, window):
    S = q.shape[2]
    pos = torch.arange(S)
    allowed = (pos[None, :] <= pos[:, None]) & (pos[None, :] > pos[:, None] - window)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=scale,
                                          enable_gqa=q.shape[1] != k.shape[1])

def rss_kib():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))

which, S, window, H, Hkv, D, dtype = sys.argv[1], *map(int, sys.argv[2:7]), sys.argv[7]
dtype = getattr(torch, dtype)
g = torch.Generator().manual_seed(0)
q = torch.randn(1, H, S, D, generator=g).to(dtype)
k = torch.randn(1, Hkv, S, D, generator=g).to(dtype)
v = torch.randn(1, Hkv, S, D, generator=g).to(dtype)
before = rss_kib()
times = []
for _ in range(int(sys.argv[9])):
    t = time.perf_counter()
    if which == "blocked":
        out = prefill_attention(q, k, v, scale=D**-0.5, sliding_window=window)
    else:
        out = whole_mask(q, k, v, D**-0.5, window)
    times.append(time.perf_counter() - t)
    last_rows = out[0, :, -4:].float().clone()
    del out
seconds = min(times)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
torch.save(last_rows, sys.argv[8])
print(json.dumps({"seconds": seconds, "peak_mib": (peak - before) / 1024}))
"""


def run(which: str, S: int, window: int, args: argparse.Namespace, out_path: str) -> dict:
    cmd = [
        sys.executable,
        "-c",
        _CHILD,
        which,
        str(S),
        str(window),
        str(args.heads),
        str(args.kv_heads),
        str(args.head_dim),
        args.dtype,
        out_path,
        str(args.repeats),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--cases", default="16384:4096,32768:512", help="S:window pairs, comma-separated"
    )
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=1)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument(
        "--repeats", type=int, default=3, help="calls per process; the fastest is reported"
    )
    args = p.parse_args()
    import tempfile

    import torch

    print(
        f"H {args.heads}/{args.kv_heads} kv, D {args.head_dim}, {args.dtype}, batch 1, one layer, "
        f"{torch.get_num_threads()} threads, fastest of {args.repeats}"
    )
    print(
        "| S | window | whole mask s | blocked s | time ratio | whole mask MiB | blocked MiB | max abs diff |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases.split(","):
            S, window = map(int, case.split(":"))
            old = run("whole", S, window, args, f"{tmp}/old.pt")
            new = run("blocked", S, window, args, f"{tmp}/new.pt")
            if "error" in old or "error" in new:
                print(f"| {S} | {window} | {old} | {new} |")
                continue
            diff = (torch.load(f"{tmp}/old.pt") - torch.load(f"{tmp}/new.pt")).abs().max().item()
            print(
                f"| {S} | {window} | {old['seconds']:.2f} | {new['seconds']:.2f} | "
                f"{old['seconds'] / new['seconds']:.2f}x | {old['peak_mib']:.0f} | {new['peak_mib']:.0f} | {diff:.2g} |"
            )


if __name__ == "__main__":
    main()
