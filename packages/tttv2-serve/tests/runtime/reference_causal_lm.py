"""A small causal LM in plain torch that honours BatchMetadata exactly (test helper).

Token + learned position embeddings, ``num_layers`` pre-norm blocks (multi-head causal
attention over a paged KV cache, GELU MLP), final norm, output projection; random weights
from a seed. ``forward`` writes each new token's keys and values at ``meta.slot_mapping``
and reads a sequence's keys through ``meta.block_tables`` up to ``meta.seq_lens`` — so a
runtime that passes wrong metadata gets wrong tokens. The pools start filled with NaN, so
reading a slot nobody wrote poisons the logits.

``dense_logits(tokens)`` computes the same function with no cache at all (full causal
attention over the whole sequence): the independent reference the runtime is checked
against. The model accepts every mode in ``modes`` (computing the same thing in each),
refuses others, and logs every pass in ``passes``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F

from tttv2.core import BatchMetadata, ExecutionMode

ALL_MODES = (
    ExecutionMode.PREFILL,
    ExecutionMode.DECODE,
    ExecutionMode.CONTINUOUS_BATCH,
    ExecutionMode.SPECULATIVE,
)


class Block(torch.nn.Module):
    def __init__(self, hidden: int, num_heads: int, scale: float, g: torch.Generator) -> None:
        super().__init__()
        self.num_heads, self.head_dim, self.scale = num_heads, hidden // num_heads, scale

        def w(*shape: int) -> torch.nn.Parameter:
            return torch.nn.Parameter(torch.randn(*shape, generator=g) / math.sqrt(shape[0]))

        self.wq, self.wk, self.wv, self.wo = (
            w(hidden, hidden),
            w(hidden, hidden),
            w(hidden, hidden),
            w(hidden, hidden),
        )
        self.w1, self.w2 = w(hidden, 4 * hidden), w(4 * hidden, hidden)

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = F.layer_norm(x, x.shape[-1:])
        shape = (x.shape[0], self.num_heads, self.head_dim)
        return (h @ self.wq).view(shape), (h @ self.wk).view(shape), (h @ self.wv).view(shape)

    @staticmethod
    def attend(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_pos: torch.Tensor
    ) -> torch.Tensor:
        """q [Q, H, D] at positions q_pos attends to k, v [L, H, D] at positions 0..L-1."""
        scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(q.shape[-1])
        future = torch.arange(k.shape[0], device=q.device)[None, :] > q_pos[:, None]
        return torch.einsum(
            "hqk,khd->qhd", scores.masked_fill(future, float("-inf")).softmax(-1), v
        )

    def finish(self, x: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        x = x + self.scale * (attn.reshape(x.shape) @ self.wo)
        return x + self.scale * (F.gelu(F.layer_norm(x, x.shape[-1:]) @ self.w1) @ self.w2)

    def forward(
        self, x: torch.Tensor, meta: BatchMetadata, k_pool: torch.Tensor, v_pool: torch.Tensor
    ) -> torch.Tensor:
        q, k, v = self.qkv(x)
        flat_k = k_pool.view(-1, self.num_heads, self.head_dim)
        flat_v = v_pool.view(-1, self.num_heads, self.head_dim)
        flat_k[meta.slot_mapping] = k
        flat_v[meta.slot_mapping] = v
        out = torch.empty_like(q)
        starts, lens, bs = meta.query_start.tolist(), meta.seq_lens.tolist(), meta.block_size
        for i in range(meta.num_seqs):
            s, e = starts[i], starts[i + 1]
            pos = torch.arange(lens[i], device=x.device)
            slots = meta.block_tables[i, pos // bs] * bs + pos % bs
            out[s:e] = self.attend(q[s:e], flat_k[slots], flat_v[slots], meta.positions[s:e])
        return self.finish(x, out)

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x)
        return self.finish(x, self.attend(q, k, v, torch.arange(x.shape[0], device=x.device)))


class ReferenceCausalLM(torch.nn.Module):
    def __init__(
        self,
        vocab_size: int = 64,
        hidden: int = 32,
        num_heads: int = 2,
        num_layers: int = 2,
        max_seq_len: int = 256,
        seed: int = 0,
        modes: Iterable[ExecutionMode] = ALL_MODES,
        layer_scales: Sequence[float] | None = None,
        logit_scale: float = 3.0,
    ) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.vocab_size, self.hidden, self.max_seq_len = vocab_size, hidden, max_seq_len
        self.embed = torch.nn.Parameter(torch.randn(vocab_size, hidden, generator=g))
        self.pos = torch.nn.Parameter(0.5 * torch.randn(max_seq_len, hidden, generator=g))
        scales = list(layer_scales) if layer_scales is not None else [1.0] * num_layers
        self.blocks = torch.nn.ModuleList(
            Block(hidden, num_heads, scales[i], g) for i in range(num_layers)
        )
        self.head = torch.nn.Parameter(
            logit_scale * torch.randn(hidden, vocab_size, generator=g) / math.sqrt(hidden)
        )
        self.modes = tuple(modes)
        self.current_mode: ExecutionMode | None = None
        self.passes: list[tuple[ExecutionMode, tuple[int, ...], tuple[int, ...]]] = []

    # -- the CausalLM protocol ----------------------------------------------------------
    def supported_modes(self) -> tuple[ExecutionMode, ...]:
        return self.modes

    def set_mode(self, mode: ExecutionMode) -> None:
        if mode not in self.modes:
            raise ValueError(f"ReferenceCausalLM does not support {mode}")
        self.current_mode = mode

    def new_cache(self, num_blocks: int, block_size: int, dtype: torch.dtype | None = None) -> list:
        shape = (num_blocks, block_size, self.blocks[0].num_heads, self.blocks[0].head_dim)
        dtype = dtype or torch.float32
        return [
            (
                torch.full(shape, float("nan"), dtype=dtype),
                torch.full(shape, float("nan"), dtype=dtype),
            )
            for _ in self.blocks
        ]

    def forward(self, input_ids: torch.Tensor, meta: BatchMetadata, cache: list) -> torch.Tensor:
        assert meta.mode is self.current_mode, (
            f"pass in {meta.mode} but set_mode({self.current_mode})"
        )
        assert input_ids.shape == (meta.num_tokens,), (input_ids.shape, meta.num_tokens)
        assert meta.positions.shape == meta.slot_mapping.shape == (meta.num_tokens,)
        assert meta.seq_lens.tolist() == list(meta.total_lens)
        self.passes.append((meta.mode, meta.query_lens, meta.context_lens))
        x = self.embed[input_ids] + self.pos[meta.positions]
        for block, (k_pool, v_pool) in zip(self.blocks, cache, strict=True):
            x = block(x, meta, k_pool, v_pool)
        return F.layer_norm(x[meta.logits_indices], (self.hidden,)) @ self.head

    # -- the independent reference --------------------------------------------------------
    @torch.no_grad()
    def dense_logits(self, tokens: Sequence[int]) -> torch.Tensor:
        """Logits ``[len(tokens), vocab]`` from full causal attention, no cache."""
        ids = torch.tensor(list(tokens), dtype=torch.long)
        x = self.embed[ids] + self.pos[: len(ids)]
        for block in self.blocks:
            x = block.dense(x)
        return F.layer_norm(x, (self.hidden,)) @ self.head

    def truncated(
        self, num_layers: int, modes: Iterable[ExecutionMode] = ALL_MODES
    ) -> ReferenceCausalLM:
        """A draft model: the same embeddings, first ``num_layers`` blocks and head."""
        draft = ReferenceCausalLM(
            self.vocab_size,
            self.hidden,
            self.blocks[0].num_heads,
            num_layers,
            self.max_seq_len,
            modes=modes,
        )
        draft.load_state_dict(
            {k: v for k, v in self.state_dict().items() if k in draft.state_dict()}
        )
        for mine, theirs in zip(draft.blocks, self.blocks, strict=False):
            mine.scale = theirs.scale
        return draft


def greedy_reference(
    model: ReferenceCausalLM, prompt: Sequence[int], max_new_tokens: int, eos: Sequence[int] = ()
) -> list[int]:
    """Greedy decoding by recomputing the whole sequence with ``dense_logits`` each step."""
    tokens, out = list(prompt), []
    while len(out) < max_new_tokens and len(tokens) < model.max_seq_len:
        t = int(model.dense_logits(tokens)[-1].argmax())
        out.append(t)
        tokens.append(t)
        if t in eos:
            break
    return out
