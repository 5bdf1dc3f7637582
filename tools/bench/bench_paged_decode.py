"""Decode-step cost of attention over a paged KV cache, next to contiguous-cache baselines.

One attention layer of Llama-3.1-8B shape (32 query heads, 8 KV heads, head_dim 128,
hidden 4096). For each context length and batch size the cache already holds ``context``
tokens per sequence; one decode step adds one token per sequence. Measured in the same
run, median over ``--steps`` steps:

Attention only (the new token's q/k/v given):
  * paged       -- ``paged_decode_attention`` (tttv2-hw) over a block pool sized for the
                   longest context of the run, blocks of the sequences interleaved as a
                   serving engine leaves them; the new K/V written at its slot first.
  * contiguous  -- the gpt-fast baseline: a static ``[B, Hkv, max_len, D]`` cache written
                   in place, SDPA over the first ``context + 1`` positions (a view).
  * concat      -- the cache grown by ``torch.cat`` each step (what a naive or Hugging Face
                   ``DynamicCache``-style decode does): copies the whole cache every step.

Whole attention block (projections, cache write, attention, output projection):
  * tttv2 paged  -- ``Attention`` in DECODE mode with a ``PagedKVCache``;
  * tttv2 static -- the same block with a ``StaticKVCache`` (block = whole sequence).

Ratios are against the contiguous baseline; ``KV GB/s`` is the keys and values the paged
step must read (2 x B x (context+1) x Hkv x D x bytes) over its time. No assertion: numbers
are for comparing runs on one machine.

    uv run python tools/bench/bench_paged_decode.py
    uv run python tools/bench/bench_paged_decode.py --contexts 128,1024,8192 --batch 1,8 --dtype bfloat16
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from tttv2.blocks import Attention, PagedKVCache, StaticKVCache
from tttv2.core import AttentionSpec, KVBlockManager
from tttv2.hw import get_kernel

HIDDEN, HEADS, KV_HEADS, HEAD_DIM = 4096, 32, 8, 128


def timed(fn: Callable[[], object], steps: int, device: torch.device) -> float:
    """Median milliseconds of ``fn`` over ``steps`` runs after two warm-up runs."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(2):
        fn()
    sync()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def fill_interleaved(manager: KVBlockManager, batch: int, context: int, block: int) -> None:
    """Reserve ``context`` tokens for each sequence a block at a time, round robin, so
    consecutive blocks of one sequence are not adjacent in the pool."""
    done = 0
    while done < context:
        n = min(block, context - done)
        manager.prepare(list(range(batch)), [n] * batch, "prefill")
        done += n


def bench_point(
    spec: AttentionSpec, batch: int, context: int, max_context: int, args, device
) -> dict:
    dtype = getattr(torch, args.dtype)
    g = torch.Generator(device="cpu").manual_seed(0)
    rand = lambda *shape: torch.randn(*shape, generator=g).to(device=device, dtype=dtype)  # noqa: E731
    q, k_new, v_new = (
        rand(batch, HEADS, HEAD_DIM),
        rand(batch, KV_HEADS, HEAD_DIM),
        rand(batch, KV_HEADS, HEAD_DIM),
    )
    scale = spec.softmax_scale

    # -- paged: pool for the longest context of the run, sequences' blocks interleaved
    block = args.block_size
    num_blocks = batch * (-(-(max_context + 1) // block))
    paged = PagedKVCache.for_specs(
        [spec], num_blocks=num_blocks, block_size=block, dtype=dtype, device=device
    )
    for pool in (paged.layer(0).key, paged.layer(0).value):
        pool.normal_()
    manager = paged.block_manager(max_context + 1)
    fill_interleaved(manager, batch, context, block)
    meta = manager.prepare(list(range(batch)), [1] * batch, "decode")
    layer = paged.layer(0)
    decode = get_kernel("paged_decode_attention", device)

    def paged_step():
        layer.write(k_new, v_new, meta.slot_mapping)
        return decode(
            q,
            layer.key,
            layer.value,
            meta.block_tables,
            meta.seq_lens,
            scale=scale,
            max_seq_len=context + 1,
        )

    # -- contiguous (gpt-fast): static cache written in place, SDPA over a view
    k_static = rand(batch, KV_HEADS, max_context + 1, HEAD_DIM)
    v_static = rand(batch, KV_HEADS, max_context + 1, HEAD_DIM)
    q4 = q.unsqueeze(2)

    def contiguous_step():
        k_static[:, :, context] = k_new
        v_static[:, :, context] = v_new
        k, v = k_static[:, :, : context + 1], v_static[:, :, : context + 1]
        return F.scaled_dot_product_attention(q4, k, v, scale=scale, enable_gqa=True)

    # -- concat: the cache grown by copying it
    k_cat, v_cat = (
        rand(batch, KV_HEADS, context, HEAD_DIM),
        rand(batch, KV_HEADS, context, HEAD_DIM),
    )

    def concat_step():
        k = torch.cat([k_cat, k_new.unsqueeze(2)], dim=2)
        v = torch.cat([v_cat, v_new.unsqueeze(2)], dim=2)
        return F.scaled_dot_product_attention(q4, k, v, scale=scale, enable_gqa=True)

    row = {
        "paged": timed(paged_step, args.steps, device),
        "contiguous": timed(contiguous_step, args.steps, device),
        "concat": timed(concat_step, args.steps, device),
    }

    # -- whole block: tttv2 Attention with the paged and the static cache
    if not args.attention_only:
        attn = Attention(spec, device=device).to(dtype)
        x = rand(batch, HIDDEN)
        static = StaticKVCache(
            [spec], max_batch=batch, max_seq_len=max_context + 1, dtype=dtype, device=device
        )
        static_manager = static.block_manager()
        static_manager.prepare(list(range(batch)), [context] * batch, "prefill")
        static_meta = static_manager.prepare(list(range(batch)), [1] * batch, "decode")
        attn.set_mode("decode")
        row["block paged"] = timed(lambda: attn(x, meta, layer), args.steps, device)
        row["block static"] = timed(
            lambda: attn(x, static_meta, static.layer(0)), args.steps, device
        )
    row["kv_bytes"] = 2 * batch * (context + 1) * KV_HEADS * HEAD_DIM * torch.finfo(dtype).bits // 8
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--contexts", default="128,1024,8192", help="comma-separated context lengths"
    )
    parser.add_argument("--batch", default="1,4", help="comma-separated batch sizes")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument(
        "--block-size", type=int, default=16, help="paged cache block size (tokens)"
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--attention-only", action="store_true", help="skip the whole-block rows")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    contexts = [int(c) for c in args.contexts.split(",")]
    batches = [int(b) for b in args.batch.split(",")]
    spec = AttentionSpec(hidden_dim=HIDDEN, num_heads=HEADS, num_kv_heads=KV_HEADS, head_dim=HEAD_DIM,
                         max_seq_len=max(contexts) + 1)  # fmt: skip

    print(f"paged decode vs contiguous cache: Llama-3.1-8B attention layer, {args.dtype}, {device}, "
          f"block {args.block_size}, torch threads {torch.get_num_threads()}, median of {args.steps} steps (ms)")  # fmt: skip
    head = f"{'context':>8} {'batch':>5} | {'paged':>8} {'contig':>8} {'concat':>8} | {'paged/contig':>12} {'concat/contig':>13} | {'KV GB/s':>7}"
    if not args.attention_only:
        head += f" | {'blk paged':>9} {'blk static':>10} {'ratio':>6}"
    print(head)
    print("-" * len(head))
    for batch in batches:
        for context in contexts:
            r = bench_point(spec, batch, context, max(contexts), args, device)
            line = (
                f"{context:>8} {batch:>5} | {r['paged']:>8.3f} {r['contiguous']:>8.3f} {r['concat']:>8.3f} | "
                f"{r['paged'] / r['contiguous']:>12.2f} {r['concat'] / r['contiguous']:>13.2f} | "
                f"{r['kv_bytes'] / r['paged'] / 1e6:>7.1f}"
            )
            if not args.attention_only:
                line += f" | {r['block paged']:>9.3f} {r['block static']:>10.3f} {r['block paged'] / r['block static']:>6.2f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
