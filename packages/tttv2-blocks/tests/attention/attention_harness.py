"""Shared helpers of the attention component tests.

A *schedule* is a list of passes ``(mode, {seq_id: number of new tokens})``. Each sequence
has its token hidden states given up front (``xs[seq_id] [S, hidden]``); a pass feeds the
next tokens of the named sequences. The outputs of every sequence, in position order,
must equal the reference run over the whole sequence at once, whatever the modes, batch
composition and cache layout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from hypothesis import strategies as st

from tttv2.blocks import Attention, PagedKVCache
from tttv2.core import AttentionSpec, KVBlockManager, RopeSpec
from tttv2.testing.reference.attention import reference_attention

Schedule = Sequence[tuple[str, Mapping[int, int]]]

#: Modes and the strategy that serves each.
MODE_STRATEGIES = {
    "prefill": "prefill_decode",
    "decode": "prefill_decode",
    "unified": "unified",
    "long_context": "multi_mode",
    "speculative": "multi_mode",
    "continuous_batch": "continuous_batching",
}


# -- specs ------------------------------------------------------------------------------
@st.composite
def attention_specs(draw: st.DrawFn, rope: bool = True) -> AttentionSpec:
    """Small valid specs covering MHA/GQA/MQA, free head_dim, biases, qk-norm, sliding
    window, soft-capping, custom scale and (default-scaling) RoPE."""
    num_kv_heads = draw(st.sampled_from([1, 2, 3]))
    group = draw(st.sampled_from([1, 2, 3]))
    head_dim = draw(st.sampled_from([4, 6, 8, 16]))
    hidden_dim = draw(st.sampled_from([8, 12, 24, 32]))
    rope_spec = None
    if rope and draw(st.booleans()):
        rotary_dim = draw(st.sampled_from([d for d in (2, 4, head_dim) if d <= head_dim]))
        rope_spec = RopeSpec(
            head_dim=head_dim,
            rotary_dim=rotary_dim,
            theta=draw(st.sampled_from([100.0, 10000.0])),
            interleaved=draw(st.booleans()),
        )
    return AttentionSpec(
        hidden_dim=hidden_dim,
        num_heads=num_kv_heads * group,
        num_kv_heads=num_kv_heads,
        head_dim=head_dim,
        qkv_bias=draw(st.booleans()),
        out_bias=draw(st.booleans()),
        qk_norm=draw(st.booleans()),
        sliding_window=draw(st.one_of(st.none(), st.integers(1, 6))),
        logit_softcap=draw(st.one_of(st.none(), st.sampled_from([0.5, 2.0, 30.0]))),
        scale=draw(st.one_of(st.none(), st.sampled_from([0.05, 0.5, 1.0]))),
        max_seq_len=64,
        rope=rope_spec,
    )


# -- modules ----------------------------------------------------------------------------
def make_attention(
    spec: AttentionSpec,
    strategy: object = "prefill_decode",
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Attention:
    """An attention block with random weights of unit-scale outputs (biases and norm
    weights random too, so every parameter matters)."""
    attn = Attention(spec, execution_strategy=strategy)  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in attn.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.5 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1]))
    return attn.to(dtype)


def make_cache(
    spec: AttentionSpec,
    num_blocks: int = 64,
    block_size: int = 4,
    dtype: torch.dtype = torch.float32,
) -> tuple[PagedKVCache, KVBlockManager]:
    cache = PagedKVCache.for_specs(
        [spec], num_blocks=num_blocks, block_size=block_size, dtype=dtype
    )
    return cache, cache.block_manager(spec.max_seq_len)


def random_inputs(
    spec: AttentionSpec,
    lengths: Mapping[int, int],
    seed: int = 1,
    dtype: torch.dtype = torch.float32,
) -> dict[int, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {s: torch.randn(n, spec.hidden_dim, generator=gen).to(dtype) for s, n in lengths.items()}


# -- running ----------------------------------------------------------------------------
def run_schedule(
    attn: Attention,
    cache: PagedKVCache,
    manager: KVBlockManager,
    xs: Mapping[int, torch.Tensor],
    schedule: Schedule,
    done: dict[int, int] | None = None,
) -> dict[int, torch.Tensor]:
    """Run the passes; return each sequence's outputs in position order. ``done`` (tokens
    already fed per sequence) is updated in place, so schedules can be continued."""
    done = {} if done is None else done
    outs: dict[int, list[torch.Tensor]] = {}
    with torch.inference_mode():
        for mode, step in schedule:
            seq_ids, lens = list(step), list(step.values())
            meta = manager.prepare(seq_ids, lens, mode)
            x = torch.cat([xs[s][done.get(s, 0) : done.get(s, 0) + n] for s, n in step.items()])
            y = attn.run_in_mode(mode, x, meta, cache.layer(0))
            assert y.shape == x.shape and y.dtype == x.dtype
            for s, part in zip(seq_ids, y.split(lens), strict=True):
                outs.setdefault(s, []).append(part)
                done[s] = done.get(s, 0) + step[s]
    return {s: torch.cat(parts) for s, parts in outs.items()}


# -- reference --------------------------------------------------------------------------
def reference_rope(spec: RopeSpec):
    """Default-scaling RoPE written out: angle ``p * theta^(-2i/R)`` for pair ``i``."""

    def rotate(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        R = spec.rotary_dim
        inv_freq = spec.theta ** (-torch.arange(0, R, 2, dtype=torch.float64) / R)
        angle = positions.to(torch.float64)[:, None] * inv_freq[None, :]  # [S, R/2]
        cos, sin = angle.cos()[:, None, :], angle.sin()[:, None, :]
        x = x.to(torch.float64)
        if spec.interleaved:
            a, b = x[..., 0:R:2], x[..., 1:R:2]
            rotated = torch.stack((a * cos - b * sin, b * cos + a * sin), dim=-1).flatten(-2)
        else:
            a, b = x[..., : R // 2], x[..., R // 2 : R]
            rotated = torch.cat((a * cos - b * sin, b * cos + a * sin), dim=-1)
        return torch.cat((rotated, x[..., R:]), dim=-1)

    return lambda q, k, positions: (rotate(q, positions), rotate(k, positions))


def reference_outputs(attn: Attention, xs: Mapping[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    spec = attn.spec
    rope = reference_rope(spec.rope) if spec.rope is not None else None
    weights = attn.state_dict()
    return {s: reference_attention(x, weights, spec, rope=rope) for s, x in xs.items()}


def assert_matches(
    got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype = torch.float32, what: str = ""
) -> None:
    """fp32: within 2e-5 of the output scale; bf16: within 4e-2 and PCC >= 0.999."""
    got, want = got.double(), want.double()
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    scale = max(1.0, want.abs().max().item())
    err = (got - want).abs().max().item()
    tol = 2e-5 if dtype == torch.float32 else 4e-2
    assert err <= tol * scale, f"{what}: max abs error {err:.3g} > {tol * scale:.3g}"
    if dtype != torch.float32 and want.numel() > 1:
        pcc = torch.corrcoef(torch.stack([got.flatten(), want.flatten()]))[0, 1].item()
        assert pcc >= 0.999, f"{what}: PCC {pcc:.5f} < 0.999"
