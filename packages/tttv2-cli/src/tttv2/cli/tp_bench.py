"""``tttv2 bench --tp N``: tokens/s of our model split over N ranks and the time rank 0
spends in collectives per pass (``DeviceMesh.comm_seconds``: the all-reduces and the logits
all-gather of the model, and the broadcast of each pass's batch description).

The same work as ``tttv2 bench``'s own measurement (:mod:`tttv2.cli.throughput`: a short
untimed warm-up run, then ``batch`` random prompts prefilled together and greedy decode
through ``LLMEngine``); transformers is not run (it has no split of its own to compare).
``--tp 1`` measures the unsplit model the same way (no collectives): the baseline to run
next to it on the same host.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import torch

from tttv2.cli.hardware import device_config
from tttv2.cli.kv_pool import plan_kv_pool
from tttv2.cli.loading import DTYPES
from tttv2.cli.throughput import bench_prompts, run_ours
from tttv2.core.model_plugins import LoadedModel
from tttv2.core.modes import ExecutionMode
from tttv2.serve.runtime import TensorParallelLeader


def bench_tp_loaded(
    args: argparse.Namespace, loaded: LoadedModel, checkpoint: Path, device: torch.device
) -> int:
    """Rank 0's part (or the only rank's with --tp 1): measure and print."""
    if args.prompt_len + args.gen_len > loaded.max_context:
        from tttv2.cli.errors import UsageError

        raise UsageError(
            f"--prompt-len {args.prompt_len} + --gen-len {args.gen_len} exceeds the model's context "
            f"of {loaded.max_context} tokens"
        )
    pool = plan_kv_pool(
        loaded.spec,
        device_config(device),
        DTYPES[args.dtype],
        seq_len=args.prompt_len + args.gen_len,
        num_seqs=args.batch,
        job=f"--batch {args.batch} x (--prompt-len {args.prompt_len} + --gen-len {args.gen_len})",
    )
    prompts = bench_prompts(args.batch, args.prompt_len, loaded.spec.vocab_size)
    run_ours(loaded, prompts[:, : min(args.prompt_len, 8)], 2, device, pool)  # warm-up, untimed
    leader = loaded.model if isinstance(loaded.model, TensorParallelLeader) else None
    if leader is not None:
        leader.comm.clear()
    engine, outputs = run_ours(loaded, prompts, args.gen_len, device, pool)
    stats = engine.stats
    record: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "dtype": args.dtype,
        "device": str(device),
        "tp": leader.mesh.world_size if leader is not None else 1,
        "batch": args.batch,
        "prompt_len": args.prompt_len,
        "gen_len": args.gen_len,
        "torch_threads_per_rank": torch.get_num_threads(),
        "prefill_tokens_per_s": stats.prefill_tokens_per_s,
        "ttft_s": statistics.mean(
            t for o in outputs if (t := o.timings.time_to_first_token) is not None
        ),
        "decode_tokens_per_s": stats.decode_tokens_per_s if stats.decode_tokens else None,
        "parameter_bytes_per_rank": sum(
            p.numel() * p.element_size() for p in loaded.model.parameters()
        ),
    }
    for mode, key in ((ExecutionMode.PREFILL, "prefill"), (ExecutionMode.DECODE, "decode")):
        comm = leader.comm.get(mode) if leader is not None else None
        record[f"{key}_passes"] = comm.passes if comm else None
        per_pass = comm.seconds_per_pass if comm else None
        record[f"{key}_comm_ms_per_pass"] = per_pass * 1e3 if per_pass is not None else 0.0
        record[f"{key}_collectives_per_pass"] = (
            comm.calls / comm.passes if comm and comm.passes else 0
        )
    decode_rate = record["decode_tokens_per_s"]
    decode_step_ms = 1e3 * args.batch / decode_rate if decode_rate else None
    record["decode_step_ms"] = decode_step_ms
    if args.json:
        print(json.dumps(record), flush=True)
        return 0
    print(
        f"checkpoint {checkpoint}  dtype {args.dtype}  device {device}  tp {record['tp']} "
        f"({record['torch_threads_per_rank']} torch threads per rank)  batch {args.batch}  "
        f"prompt {args.prompt_len}  generate {args.gen_len}"
    )
    rate = record["decode_tokens_per_s"]
    print(f"prefill tokens/s          {record['prefill_tokens_per_s']:.1f}")
    print(f"time to first token ms    {record['ttft_s'] * 1e3:.2f}")
    print(f"decode tokens/s           {rate:.1f}" if rate else "decode tokens/s           n/a")
    if decode_step_ms is not None:
        print(
            f"decode step ms            {decode_step_ms:.2f}, of which in collectives (rank 0) "
            f"{record['decode_comm_ms_per_pass']:.2f} ({record['decode_collectives_per_pass']:.0f} per step)"
        )
    print(
        f"prefill pass comm ms      {record['prefill_comm_ms_per_pass']:.2f} "
        f"({record['prefill_collectives_per_pass']:.0f} collectives per pass)"
    )
    print(
        f"weights per rank MiB      {record['parameter_bytes_per_rank'] / 1024**2:.1f}", flush=True
    )
    return 0
