"""Naive references for the kernels: explicit loops over batch, heads and queries."""

from __future__ import annotations

import math

import torch


def naive_attention_row(q, keys, values, positions, q_pos, scale, window, softcap):
    """One query vector against explicit key/value rows at the given absolute positions."""
    scores = []
    for j, p in enumerate(positions):
        if p > q_pos or (window is not None and p <= q_pos - window):
            scores.append(-math.inf)
            continue
        s = float(q.double() @ keys[j].double()) * scale
        if softcap is not None:
            s = softcap * math.tanh(s / softcap)
        scores.append(s)
    w = torch.softmax(torch.tensor(scores, dtype=torch.float64), dim=0)
    return (w.unsqueeze(1) * values.double()).sum(0)


def naive_prefill(q, k, v, scale, window=None, softcap=None):
    B, H, Sq, D = q.shape
    Hkv, Sk = k.shape[1], k.shape[2]
    out = torch.zeros(B, H, Sq, D, dtype=torch.float64)
    for b in range(B):
        for h in range(H):
            kh = h // (H // Hkv)
            for i in range(Sq):
                out[b, h, i] = naive_attention_row(
                    q[b, h, i], k[b, kh], v[b, kh], range(Sk), Sk - Sq + i, scale, window, softcap
                )
    return out


def naive_paged_decode(q, k_pool, v_pool, block_tables, seq_lens, scale, window=None, softcap=None):
    B, H, D = q.shape
    bs, Hkv = k_pool.shape[1], k_pool.shape[2]
    out = torch.zeros(B, H, D, dtype=torch.float64)
    for b in range(B):
        n = int(seq_lens[b])
        keys = torch.stack(
            [k_pool[block_tables[b, p // bs], p % bs] for p in range(n)]
        )  # [n, Hkv, D]
        vals = torch.stack([v_pool[block_tables[b, p // bs], p % bs] for p in range(n)])
        for h in range(H):
            kh = h // (H // Hkv)
            out[b, h] = naive_attention_row(
                q[b, h], keys[:, kh], vals[:, kh], range(n), n - 1, scale, window, softcap
            )
    return out


def naive_rms_norm(x, weight, eps, unit_offset=False):
    out = torch.empty(x.shape, dtype=torch.float64)
    flat_x, flat_o = x.double().reshape(-1, x.shape[-1]), out.view(-1, x.shape[-1])
    w = weight.double() + (1.0 if unit_offset else 0.0)
    for r in range(flat_x.shape[0]):
        row = flat_x[r]
        flat_o[r] = row / math.sqrt(float((row * row).mean()) + eps) * w
    return out


def naive_rotary(x, cos, sin, interleaved=False):
    T, H, D = x.shape
    half = cos.shape[1]
    out = x.double().clone()
    for t in range(T):
        for h in range(H):
            for i in range(half):
                a_idx, b_idx = (2 * i, 2 * i + 1) if interleaved else (i, i + half)
                a, b = float(x[t, h, a_idx]), float(x[t, h, b_idx])
                c, s = float(cos[t, i]), float(sin[t, i])
                out[t, h, a_idx] = a * c - b * s
                out[t, h, b_idx] = b * c + a * s
    return out


def full_mask_prefill(q, k, v, scale, window=None, softcap=None):
    """fp64 attention with the whole ``[Sq, Sk]`` causal/window mask, as tttv2-hw computed
    windowed prefill before it worked in blocks (query ``i`` at position ``Sk - Sq + i``)."""
    B, H, Sq, D = q.shape
    Hkv, Sk = k.shape[1], k.shape[2]
    kk = k.double().repeat_interleave(H // Hkv, dim=1)
    vv = v.double().repeat_interleave(H // Hkv, dim=1)
    q_pos = torch.arange(Sk - Sq, Sk).unsqueeze(1)
    k_pos = torch.arange(Sk).unsqueeze(0)
    allowed = k_pos <= q_pos
    if window is not None:
        allowed &= k_pos > q_pos - window
    scores = q.double() @ kk.transpose(-1, -2) * scale
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1) @ vv
