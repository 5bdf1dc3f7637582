"""Readable reference for causal self-attention (the math of ``AttentionSpec``).

One sequence at a time, every token from position 0, one head at a time, with the full
``[S, S]`` score matrix and an explicit mask. Nothing here is fast and nothing is shared
with ``tttv2.blocks``: an optimised attention (any execution mode, any cache layout) is
correct when, for each sequence, its outputs equal these rows.

Weights are given by their Hugging Face names (``q_proj.weight`` ``[H*D, hidden]``,
``q_proj.bias``, ``k_proj.*``, ``v_proj.*``, ``o_proj.*``, ``q_norm.weight``,
``k_norm.weight`` ``[D]``), i.e. ``module.state_dict()`` of an unfused attention block.

Rotary embedding is passed in as a function ``rope(q [S, H, D], k [S, Hkv, D],
positions [S]) -> (q, k)`` so that this file stays about attention alone; it is required
when ``spec.rope`` is set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from tttv2.core.specs import AttentionSpec
from tttv2.testing.reference.normalization import reference_rms_norm

RopeFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def reference_attention(
    x: torch.Tensor,
    weights: Mapping[str, torch.Tensor],
    spec: AttentionSpec,
    *,
    rope: RopeFn | None = None,
    positions: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Attention output ``[S, hidden]`` (in ``dtype``) of one whole sequence ``x [S, hidden]``.

    ``positions`` (default ``0 .. S-1``) only feed ``rope``; causality and the sliding
    window are over the token order of ``x``.
    """
    if x.dim() != 2 or x.shape[1] != spec.hidden_dim:
        raise ValueError(
            f"reference_attention: x must be [S, {spec.hidden_dim}], got {tuple(x.shape)}"
        )
    if spec.rope is not None and rope is None:
        raise ValueError(
            "reference_attention: spec.rope is set, so pass rope=(q, k, positions) -> (q, k)"
        )
    S = x.shape[0]
    H, Hkv, D = spec.num_heads, spec.num_kv_heads, spec.head_dim
    assert Hkv is not None and D is not None  # AttentionSpec.validate() resolved both
    w = {name: t.detach().to(dtype) for name, t in weights.items()}
    x = x.detach().to(dtype)

    q = _linear(x, w, "q_proj").view(S, H, D)
    k = _linear(x, w, "k_proj").view(S, Hkv, D)
    v = _linear(x, w, "v_proj").view(S, Hkv, D)

    if spec.qk_norm:
        offset = spec.qk_norm_unit_offset  # float64 norm, back to the working dtype
        q = reference_rms_norm(q, w["q_norm.weight"], spec.qk_norm_eps, offset).to(dtype)
        k = reference_rms_norm(k, w["k_norm.weight"], spec.qk_norm_eps, offset).to(dtype)

    if rope is not None:
        pos = positions if positions is not None else torch.arange(S)
        q, k = rope(q, k, pos)
        q, k = q.to(dtype), k.to(dtype)

    allowed = causal_mask(S, spec.sliding_window)
    group = H // Hkv
    heads = []
    for h in range(H):
        kv = h // group  # consecutive query heads share a KV head (Hugging Face order)
        scores = (q[:, h, :] @ k[:, kv, :].T) * spec.softmax_scale  # [S, S]
        if spec.logit_softcap is not None:
            cap = spec.logit_softcap
            scores = cap * torch.tanh(scores / cap)
        scores = scores.masked_fill(~allowed, float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        heads.append(probs @ v[:, kv, :])  # [S, D]
    attn = torch.cat(heads, dim=-1)  # [S, H*D], head-major like the projections
    return _linear(attn, w, "o_proj")


def reference_attention_batch(
    xs: Sequence[torch.Tensor],
    weights: Mapping[str, torch.Tensor],
    spec: AttentionSpec,
    *,
    rope: RopeFn | None = None,
    dtype: torch.dtype = torch.float64,
) -> list[torch.Tensor]:
    """:func:`reference_attention` of each sequence on its own."""
    return [reference_attention(x, weights, spec, rope=rope, dtype=dtype) for x in xs]


def causal_mask(size: int, sliding_window: int | None = None) -> torch.Tensor:
    """``[size, size]`` bool: query ``i`` may see key ``j`` when ``j <= i`` and, with a
    window, ``i - j < sliding_window`` (the query itself included)."""
    i = torch.arange(size).view(-1, 1)
    j = torch.arange(size).view(1, -1)
    allowed = j <= i
    if sliding_window is not None:
        allowed = allowed & (i - j < sliding_window)
    return allowed


def _linear(x: torch.Tensor, w: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
    y = x @ w[f"{name}.weight"].T
    bias = w.get(f"{name}.bias")
    return y + bias if bias is not None else y
