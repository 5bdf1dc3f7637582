"""Cost of swapping a preempted request's KV blocks to the engine's host pool and back.

``LLMEngine`` copies a preempted request's blocks to ``HostKVPool`` (swap out) and back
into freshly allocated blocks when the request resumes (swap in), instead of re-prefilling
it. This times both copies for a KV cache of a model's shape (every layer's key and value
pool, block size 16), for requests holding ``--blocks`` blocks: median over ``--repeats``
of one swap out + one swap in, reported per block and direction, with the bytes moved per
second. On a CPU device both pools are host memory (a gather + scatter); on CUDA the copy
crosses PCIe into pinned memory. Compare with the prefill the swap saves
(``tools/bench/bench_model.py``).

    uv run python tools/bench/bench_kv_swap.py
    uv run python tools/bench/bench_kv_swap.py --shape llama-3.2-1b --blocks 1,8,64 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tttv2.serve.runtime.kv_swap import HostKVPool

SHAPES = {  # layers, KV heads, head_dim
    "smollm2-135m": (30, 3, 64),
    "llama-3.2-1b": (16, 8, 64),
    "llama-3.1-8b": (32, 8, 128),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--shape",
        choices=sorted(SHAPES),
        default="smollm2-135m",
        help="model whose KV layout to use",
    )
    parser.add_argument(
        "--blocks", default="1,8,64", help="comma-separated blocks per swapped request"
    )
    parser.add_argument("--block-size", type=int, default=16, help="tokens per block")
    parser.add_argument(
        "--dtype", choices=("bfloat16", "float32"), default="bfloat16", help="cache dtype"
    )
    parser.add_argument("--device", default="cpu", help="device of the KV cache (cpu, cuda)")
    parser.add_argument(
        "--repeats", type=int, default=20, help="timed swaps per size (median reported)"
    )
    args = parser.parse_args()
    layers, heads, head_dim = SHAPES[args.shape]
    sizes = [int(b) for b in args.blocks.split(",")]
    num_blocks = 2 * max(sizes)
    dtype = getattr(torch, args.dtype)
    shape = (num_blocks, args.block_size, heads, head_dim)
    cache = [
        (torch.randn(shape).to(args.device, dtype), torch.randn(shape).to(args.device, dtype))
        for _ in range(layers)
    ]
    block_bytes = 2 * layers * args.block_size * heads * head_dim * torch.finfo(dtype).bits // 8
    print(
        f"{args.shape}: {layers} layers x {heads} KV heads x head_dim {head_dim}, block {args.block_size}, "
        f"{args.dtype} on {args.device}: {block_bytes / 1024:.0f} KiB per block (all layers, K and V)"
    )
    print(f"{'blocks':>6} {'out us/block':>13} {'in us/block':>12} {'out GB/s':>9} {'in GB/s':>8}")
    for n in sizes:
        pool = HostKVPool(cache, num_blocks, n)
        src, dst = list(range(n)), list(range(num_blocks - n, num_blocks))
        outs, ins = [], []
        for i in range(args.repeats + 2):
            t0 = time.perf_counter()
            pool.swap_out(0, src, n * args.block_size)
            t1 = time.perf_counter()
            pool.swap_in(0, dst)
            t2 = time.perf_counter()
            if i >= 2:  # the first swaps allocate the host pool and warm up
                outs.append(t1 - t0)
                ins.append(t2 - t1)
        for l_ in range(layers):
            assert torch.equal(cache[l_][0][dst], cache[l_][0][src])
        out_s, in_s = statistics.median(outs), statistics.median(ins)
        print(
            f"{n:>6} {out_s / n * 1e6:>13.1f} {in_s / n * 1e6:>12.1f} "
            f"{n * block_bytes / out_s / 1e9:>9.2f} {n * block_bytes / in_s / 1e9:>8.2f}"
        )


if __name__ == "__main__":
    main()
