"""Tensor parallelism on one host: per-rank memory and per-step time at TP 1 and TP 2.

A small Llama-shaped model (random fp32 weights, written once as safetensors with the
module names) is loaded by every rank with ``tttv2.blocks.parallel.load_shard`` (each rank
reads only its slices) and run as a ``ShardedTransformerStack`` over a
``tttv2.hw.mesh.DeviceMesh`` (gloo on CPU): a prompt is prefilled, then ``--steps`` greedy
decode steps at batch 1 are timed one by one. Both sizes run in worker processes started
by ``tttv2.hw.mesh.launch`` with the same total number of intra-op threads (TP 1: all
cores in one rank; TP 2: half each), so the difference is the split plus the
communication. Reported per rank: parameter bytes, KV-cache bytes, peak RSS of the process;
per step: median wall time, the time inside collectives (``mesh.comm_seconds``) and their
count. Nothing here asserts a time.

    uv run python tools/bench/bench_tensor_parallel.py            # TP 1 and TP 2
    uv run python tools/bench/bench_tensor_parallel.py --tp 1 2 4 --steps 64
    uv run python tools/bench/bench_tensor_parallel.py --tp 1 2 --threads 1   # one thread per rank
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from tttv2.blocks import TransformerStack
from tttv2.blocks.parallel import ShardedTransformerStack, load_shard
from tttv2.core import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    ExecutionMode,
    FeedForwardSpec,
    KVBlockManager,
    LMHeadSpec,
    ModelSpec,
    NormSpec,
    RopeSpec,
)
from tttv2.hw.mesh import launch


def model_spec(
    hidden: int, heads: int, kv_heads: int, layers: int, inter: int, vocab: int
) -> ModelSpec:
    head_dim = hidden // heads
    norm = NormSpec(dim=hidden, eps=1e-5)
    rope = RopeSpec(head_dim=head_dim, max_position=1024)
    attention = AttentionSpec(
        hidden_dim=hidden, num_heads=heads, num_kv_heads=kv_heads, rope=rope, max_seq_len=1024
    )
    layer = DecoderLayerSpec(
        attention=attention,
        ffn=FeedForwardSpec(hidden_dim=hidden, intermediate_dim=inter),
        attn_norm=norm,
        ffn_norm=norm,
    )
    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=vocab, hidden_dim=hidden),
        layers=(layer,) * layers,
        final_norm=norm,
        lm_head=LMHeadSpec(hidden_dim=hidden, vocab_size=vocab),
        max_seq_len=1024,
    )


def worker(mesh, spec: ModelSpec, checkpoint: str, prompt_len: int, steps: int) -> dict[str, float]:
    stack = ShardedTransformerStack(spec, mesh).eval()
    report = load_shard(stack, checkpoint, stack.plan.tensors())
    block_size, num_blocks = 16, (prompt_len + steps) // 16 + 2
    cache = stack.new_cache(num_blocks, block_size)
    blocks = KVBlockManager(num_blocks, block_size, spec.max_seq_len)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, spec.vocab_size, (prompt_len,), generator=generator)
    with torch.no_grad():
        mesh.barrier()
        start = time.perf_counter()
        nxt = stack(ids, blocks.prepare([0], [prompt_len], ExecutionMode.PREFILL), cache).argmax(-1)
        prefill_s = time.perf_counter() - start
        times, comm, calls = [], [], []
        for _ in range(steps):
            mesh.barrier()  # steps start together: the time is the step's, not a rank's lag
            c0, n0 = mesh.comm_seconds, mesh.comm_calls
            start = time.perf_counter()
            nxt = stack(nxt, blocks.prepare([0], [1], ExecutionMode.DECODE), cache).argmax(-1)
            times.append(time.perf_counter() - start)
            comm.append(mesh.comm_seconds - c0)
            calls.append(mesh.comm_calls - n0)
    kv_bytes = sum(layer.key.numel() * layer.key.element_size() * 2 for layer in cache.layers)
    return {
        "rank": mesh.rank,
        "threads": torch.get_num_threads(),
        "parameter_bytes": stack.parameter_bytes(),
        "bytes_read": report.bytes_read,
        "kv_bytes": kv_bytes,
        "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "prefill_ms": prefill_s * 1e3,
        "step_ms": statistics.median(times) * 1e3,
        "comm_ms": statistics.median(comm) * 1e3,
        "comm_calls": statistics.median(calls),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tp",
        type=int,
        nargs="+",
        default=[1, 2],
        help="tensor-parallel sizes to run (default: 1 2)",
    )
    parser.add_argument("--steps", type=int, default=32, help="timed decode steps (default 32)")
    parser.add_argument(
        "--prompt", type=int, default=64, help="prompt tokens prefilled first (default 64)"
    )
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--intermediate", type=int, default=1536)
    parser.add_argument("--vocab", type=int, default=16000)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="intra-op threads per rank (default: usable cores / TP size)",
    )
    args = parser.parse_args()
    spec = model_spec(
        args.hidden, args.heads, args.kv_heads, args.layers, args.intermediate, args.vocab
    )
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        ref = TransformerStack(spec)
        path = Path(tmp) / "model.safetensors"
        save_file({n: p.detach().contiguous() for n, p in ref.named_parameters()}, str(path))
        full = sum(p.numel() * p.element_size() for p in ref.parameters())
        del ref
        print(
            f"model: {full / 2**20:.1f} MiB fp32 weights; {cores} usable cores; torch {torch.__version__}"
        )
        print(
            f"{'TP':>3} {'rank':>4} {'thr':>3} {'params MiB':>10} {'KV MiB':>7} {'RSS MiB':>8} "
            f"{'prefill ms':>10} {'step ms':>8} {'comm ms':>8} {'colls/step':>10}"
        )
        for tp in args.tp:
            ranks = launch(
                worker,
                tp,
                spec,
                str(path),
                args.prompt,
                args.steps,
                timeout_s=900,
                threads_per_rank=args.threads or max(1, cores // tp),
            )
            for r in ranks:
                print(
                    f"{tp:>3} {r['rank']:>4} {r['threads']:>3} {r['parameter_bytes'] / 2**20:>10.1f} "
                    f"{r['kv_bytes'] / 2**20:>7.2f} {r['max_rss'] / 2**20:>8.0f} {r['prefill_ms']:>10.1f} "
                    f"{r['step_ms']:>8.2f} {r['comm_ms']:>8.2f} {r['comm_calls']:>10.0f}"
                )


if __name__ == "__main__":
    main()
