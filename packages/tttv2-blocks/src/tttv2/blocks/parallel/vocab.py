"""Vocab-parallel embedding and LM head: each rank holds a contiguous range of vocabulary
rows (:class:`~tttv2.blocks.parallel.plan.VocabShard`).

Embedding: ids outside the rank's rows look up zeros; one all-reduce gives every rank the
full hidden states (the scale is applied per rank, learned positions once after the sum).
LM head: each rank's logits for its rows, padded to the common part size, are
all-gathered into ``[N, vocab]`` (the soft-cap after the gather). Tied heads share the
rank's embedding rows.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F

from tttv2.blocks.building_blocks.embedding import EmbeddingIndexError, TokenEmbedding
from tttv2.blocks.building_blocks.lm_head import LMHead
from tttv2.blocks.parallel.plan import VocabShard
from tttv2.core.specs import EmbeddingSpec, LMHeadSpec
from tttv2.hw.mesh import DeviceMesh


class ShardedEmbedding(TokenEmbedding):
    """``weight [rows, hidden]``: the rank's rows; ``position_embedding`` whole."""

    def __init__(
        self, spec: EmbeddingSpec, shard: VocabShard, mesh: DeviceMesh, device: Any = None
    ) -> None:
        if not isinstance(spec, EmbeddingSpec) or spec.vocab_size != shard.vocab_size:
            raise ValueError(
                f"ShardedEmbedding: spec.vocab_size must equal the shard's vocab_size ({shard.vocab_size})"
            )
        super().__init__(dataclasses.replace(spec, vocab_size=shard.size), device=device)
        self.full_spec = spec
        self.shard = shard
        self.mesh = mesh

    def forward(
        self, input_ids: torch.Tensor, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        if input_ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"TokenEmbedding expects integer token ids, got dtype {input_ids.dtype}"
            )
        if self.position_embedding is not None and positions is None:
            raise ValueError(
                "TokenEmbedding with learned positions (max_positions set) needs positions"
            )
        self.check_inputs(input_ids, positions)
        start, stop = self.shard.rows
        mine = (input_ids >= start) & (input_ids < stop)
        local = torch.where(mine, input_ids - start, torch.zeros_like(input_ids))
        h = F.embedding(local, self.weight) * mine.unsqueeze(-1).to(self.weight.dtype)
        if self.spec.scale is not None:
            h = h * torch.tensor(self.spec.scale, dtype=h.dtype, device=h.device)
        h = self.mesh.all_reduce(h)
        if self.position_embedding is not None and positions is not None:  # checked above
            h = h + F.embedding(positions, self.position_embedding)
        return h

    def check_inputs(self, input_ids: torch.Tensor, positions: torch.Tensor | None = None) -> None:
        for values, argument, what, size, field in (
            (input_ids, "input_ids", "token id", self.full_spec.vocab_size, "vocab_size"),
            (positions, "positions", "position", self.full_spec.max_positions, "max_positions"),
        ):
            if values is None or size is None or values.numel() == 0:
                continue
            low, high = (int(v) for v in torch.aminmax(values))
            if high >= size:
                raise EmbeddingIndexError(argument, what, high, size, field)
            if low < 0:
                raise EmbeddingIndexError(argument, what, low, size, field)


class ShardedLMHead(LMHead):
    """``weight [rows, hidden]`` (the embedding's rows when tied), ``bias [rows]``."""

    def __init__(
        self,
        spec: LMHeadSpec,
        shard: VocabShard,
        mesh: DeviceMesh,
        embedding: ShardedEmbedding | None = None,
        device: Any = None,
    ) -> None:
        if not isinstance(spec, LMHeadSpec) or spec.vocab_size != shard.vocab_size:
            raise ValueError(
                f"ShardedLMHead: spec.vocab_size must equal the shard's vocab_size ({shard.vocab_size})"
            )
        local = dataclasses.replace(spec, vocab_size=shard.size, final_logit_softcap=None)
        super().__init__(local, embedding=embedding, device=device)
        self.full_spec = spec
        self.shard = shard
        self.mesh = mesh

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, hidden]`` -> ``[N, vocab]`` on every rank."""
        logits = super().forward(x)  # the rank's rows, no soft-cap yet
        pad = self.shard.padded - self.shard.size
        if pad:
            logits = F.pad(logits, (0, pad))
        logits = self.mesh.all_gather(logits, dim=-1)[..., : self.full_spec.vocab_size]
        cap = self.full_spec.final_logit_softcap
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits
