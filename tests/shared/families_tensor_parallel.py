"""What each rank runs in tests/patterns/test_families_tensor_parallel.py (importable by
name: the launcher's worker processes import it), and the same run at TP 1.

``greedy_run(model, ids, steps)``: prefill logits of every prompt token, then ``steps``
greedy decode steps through the paged cache (logits and tokens); a
:class:`~tttv2.blocks.TransformerStack` and a rank's
:class:`~tttv2.blocks.parallel.ShardedTransformerStack` take the same calls."""

from __future__ import annotations

import traceback

import torch
from families import project

from tttv2.core.kv_blocks import KVBlockManager
from tttv2.core.modes import ExecutionMode

BLOCK_SIZE = 16


@torch.inference_mode()
def greedy_run(model: torch.nn.Module, ids: list[int], steps: int) -> dict[str, object]:
    blocks = -(-(len(ids) + steps) // BLOCK_SIZE)
    manager = KVBlockManager(blocks, BLOCK_SIZE, max_seq_len=blocks * BLOCK_SIZE)
    cache = model.new_cache(blocks, BLOCK_SIZE)
    meta = manager.prepare([0], [len(ids)], ExecutionMode.PREFILL, logits="all")
    prefill = model(torch.tensor(ids), meta, cache).float()
    token = int(prefill[-1].argmax())
    tokens, decode = [token], []
    for _ in range(steps - 1):
        meta = manager.prepare([0], [1], ExecutionMode.DECODE)
        logits = model(torch.tensor([token]), meta, cache).float()
        decode.append(logits[0])
        token = int(logits[0].argmax())
        tokens.append(token)
    return {"prefill": prefill, "decode": torch.stack(decode), "tokens": tokens}


def parameter_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def run_families(
    mesh, jobs: list[tuple[str, str, list[int]]], steps: int
) -> dict[str, dict[str, object]]:
    """Every family in one process group: this rank's shard loaded by the family's own
    plugin (``load(..., mesh=mesh)``), then :func:`greedy_run`. A family whose load
    raises is reported as ``{"error": ...}`` (both ranks raise alike, before any
    collective of its forward) and the loop goes on to the next family."""
    out: dict[str, dict[str, object]] = {}
    for architecture, path, ids in jobs:
        try:
            loaded = project(architecture).load(path, dtype=torch.float32, mesh=mesh)
        except Exception as exc:  # reported per family by the test
            out[architecture] = {"error": "".join(traceback.format_exception_only(exc)).strip()}
            continue
        out[architecture] = greedy_run(loaded.model, ids, steps) | {
            "rank": mesh.rank,
            "model_class": type(loaded.model).__name__,
            "parameter_bytes": parameter_bytes(loaded.model),
        }
    return out
