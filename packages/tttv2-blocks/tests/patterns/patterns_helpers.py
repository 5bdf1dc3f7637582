"""Shared by the pattern tests: run a stack over several passes of a paged cache, and guard
MoE property tests against float32/float64 routing near-ties."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tttv2.blocks import MoE, TransformerStack
from tttv2.core import ExecutionMode, KVBlockManager

Pass = tuple[Sequence[tuple[int, int]], ExecutionMode]  # ((seq_id, new tokens), ...), mode


def run_passes(
    stack: TransformerStack,
    tokens: dict[int, list[int]],
    passes: Sequence[Pass],
    block_size: int = 4,
    num_blocks: int = 64,
) -> dict[tuple[int, int], torch.Tensor]:
    """Feed ``tokens`` pass by pass (ragged batches, logits for every new token); the
    logits row of every (seq_id, position)."""
    cache = stack.new_cache(num_blocks, block_size)
    blocks = KVBlockManager(num_blocks, block_size, stack.spec.max_seq_len)
    done = dict.fromkeys(tokens, 0)
    rows: dict[tuple[int, int], torch.Tensor] = {}
    for chunks, mode in passes:
        meta = blocks.prepare([s for s, _ in chunks], [n for _, n in chunks], mode, logits="all")
        ids = torch.tensor([t for s, n in chunks for t in tokens[s][done[s] : done[s] + n]])
        logits = stack(ids, meta, cache)
        assert logits.shape == (len(ids), stack.spec.vocab_size)
        row = 0
        for s, n in chunks:
            for p in range(done[s], done[s] + n):
                rows[(s, p)] = logits[row]
                row += 1
            done[s] += n
    return rows


def record_router_logits(module: torch.nn.Module) -> list[torch.Tensor]:
    """Collect the router logits of every MoE inside ``module`` as it runs."""
    seen: list[torch.Tensor] = []
    for m in module.modules():
        if isinstance(m, MoE):
            m.gate.register_forward_hook(lambda _m, _a, out: seen.append(out.detach()))
    return seen


def routing_is_clear(
    router_logits: list[torch.Tensor], top_k_of: list[int], gap: float = 1e-4
) -> bool:
    """False when some token's k-th and (k+1)-th expert probabilities are within ``gap``
    (float32 and the float64 reference could then route it differently)."""
    for logits, k in zip(router_logits, top_k_of, strict=True):
        if k >= logits.shape[-1]:
            continue
        top = torch.softmax(logits.double(), -1).topk(k + 1, dim=-1).values
        if bool(((top[:, k - 1] - top[:, k]) <= gap).any()):
            return False
    return True
