"""The one-call decoder layer kernel: the layer it computes against plain PyTorch written
out here, and its checks (bad tensors named, out-of-range slots refused before any write)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tttv2.hw.kernels.native.decode_layer import (
    MAX_ROWS,
    DecodeLayerShape,
    DecodeLayerWeights,
    NativeDecodeLayer,
    NativeDecodeStep,
    native_decode_layer_available,
)

with torch.inference_mode():
    if not native_decode_layer_available():
        pytest.skip("the native decode layer kernel cannot be built here", allow_module_level=True)

HID, H, HKV, D, INTER, BS = 48, 6, 2, 8, 80, 4


def layer_weights(seed: int = 0, bias: bool = True) -> DecodeLayerWeights:
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g) * 0.3  # noqa: E731
    qkv = (H + 2 * HKV) * D
    return DecodeLayerWeights(
        1 + r(HID), r(qkv, HID), r(qkv) if bias else None, r(HID, H * D), r(HID) if bias else None,
        1 + r(HID), r(2 * INTER, HID), r(2 * INTER) if bias else None, r(HID, INTER), r(HID) if bias else None,
    )  # fmt: skip


SHAPE = DecodeLayerShape(
    H, HKV, D, D, False, "silu", 1e-5, 1e-6, False, False, 1 / math.sqrt(D), None, None
)


def layer_reference(
    w: DecodeLayerWeights,
    h,
    cos,
    sin,
    k_pool,
    v_pool,
    slots,
    tables,
    lens,
    shape: DecodeLayerShape | None = None,
) -> torch.Tensor:
    """The layer in plain PyTorch, fp32, reading the cache as whole sequences; the optional
    norms of ``w`` (sandwich, QK) with ``shape``'s numbers where present."""
    s = shape or SHAPE
    rms = lambda x, g, eps: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * g  # noqa: E731
    opt = lambda x, g, eps, unit: x if g is None else rms(x, g + 1 if unit else g, eps)  # noqa: E731
    qkv = F.linear(rms(h, w.attn_norm, 1e-5), w.qkv_weight, w.qkv_bias)
    q, k, v = qkv.split((H * D, HKV * D, HKV * D), -1)
    q, k, v = q.view(-1, H, D), k.view(-1, HKV, D), v.view(-1, HKV, D)
    q, k = (
        opt(x, g, s.qk_norm_eps, s.qk_norm_unit_offset) for x, g in ((q, w.q_norm), (k, w.k_norm))
    )

    def rope(x):
        a, b = x[..., : D // 2], x[..., D // 2 :]
        c, s = cos[:, None], sin[:, None]
        return torch.cat((a * c - b * s, b * c + a * s), -1)

    q, k = rope(q), rope(k)
    k_pool.view(-1, HKV, D)[slots] = k
    v_pool.view(-1, HKV, D)[slots] = v
    outs = []
    for b in range(h.shape[0]):
        n = int(lens[b])
        keys = k_pool[tables[b]].reshape(-1, HKV, D)[:n].repeat_interleave(H // HKV, 1)
        vals = v_pool[tables[b]].reshape(-1, HKV, D)[:n].repeat_interleave(H // HKV, 1)
        p = torch.softmax(torch.einsum("hd,thd->ht", q[b], keys) / math.sqrt(D), -1)
        outs.append(torch.einsum("ht,thd->hd", p, vals).reshape(-1))
    attn = F.linear(torch.stack(outs), w.o_weight, w.o_bias)
    h = h + opt(attn, w.post_attn_norm, s.post_attn_norm_eps, s.post_attn_norm_unit_offset)
    gate, up = F.linear(rms(h, w.ffn_norm, 1e-6), w.gate_up_weight, w.gate_up_bias).chunk(2, -1)
    ffn = F.linear(F.silu(gate) * up, w.down_weight, w.down_bias)
    return h + opt(ffn, w.post_ffn_norm, s.post_ffn_norm_eps, s.post_ffn_norm_unit_offset)


def layer_batch(rows: int = 3, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    k_pool, v_pool = (
        torch.randn(12, BS, HKV, D, generator=g),
        torch.randn(12, BS, HKV, D, generator=g),
    )
    lens = torch.tensor([5, 1, 9][:rows])
    tables = torch.tensor([[3, 7, 0], [5, 0, 0], [1, 2, 11]][:rows])
    slots = torch.stack(
        [tables[b, (int(lens[b]) - 1) // BS] * BS + (int(lens[b]) - 1) % BS for b in range(rows)]
    )
    angles = (lens - 1)[:, None].float() * torch.rand(D // 2, generator=g)
    h = torch.randn(rows, HID, generator=g)
    return h, angles.cos(), angles.sin(), k_pool, v_pool, slots, tables, lens


def test_layer_equals_plain_pytorch() -> None:
    w = layer_weights()
    h, cos, sin, k_pool, v_pool, slots, tables, lens = layer_batch()
    expected = layer_reference(
        w, h.clone(), cos, sin, k_pool.clone(), v_pool.clone(), slots, tables, lens
    )
    layer = NativeDecodeLayer(w, SHAPE)
    with torch.inference_mode():
        step = NativeDecodeStep(
            h, slots, tables, lens, torch.float32, layer.workspace_bytes(3, torch.float32)
        )
        layer.check_step(step, k_pool, v_pool, cos)
        layer(step, k_pool, v_pool, cos, sin)
    torch.testing.assert_close(h, expected, rtol=1e-5, atol=1e-5)


def _optional_norms(seed: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    r = lambda n: torch.randn(n, generator=g) * 0.5  # noqa: E731 (around 0: unit offsets matter)
    return {"post_attn_norm": r(HID), "post_ffn_norm": r(HID), "q_norm": r(D), "k_norm": r(D)}


OPTIONAL_NORMS = {
    "sandwich": ({"post_attn_norm", "post_ffn_norm"}, {"post_attn_norm_eps": 1e-4, "post_ffn_norm_eps": 1e-3}),
    "sandwich_unit_offset": (
        {"post_attn_norm", "post_ffn_norm"}, {"post_attn_norm_unit_offset": True, "post_ffn_norm_unit_offset": True}
    ),
    "qk_norm": ({"q_norm", "k_norm"}, {"qk_norm_eps": 1e-3}),
    "qk_norm_unit_offset_and_sandwich": (
        {"q_norm", "k_norm", "post_attn_norm", "post_ffn_norm"},
        {"qk_norm_unit_offset": True, "post_attn_norm_unit_offset": True, "post_ffn_norm_unit_offset": False},
    ),
}  # fmt: skip


@pytest.mark.parametrize("variant", sorted(OPTIONAL_NORMS))
def test_optional_norms_equal_plain_pytorch(variant: str) -> None:
    """Sandwich norms (Gemma 2/3) and QK-norm (Qwen3, Gemma 3), with their own epsilons and
    unit offsets, where the reference puts them."""
    names, numbers = OPTIONAL_NORMS[variant]
    w = DecodeLayerWeights(
        **{**layer_weights().__dict__, **{k: v for k, v in _optional_norms().items() if k in names}}
    )
    shape = DecodeLayerShape(**{**SHAPE.__dict__, **numbers})
    h, cos, sin, k_pool, v_pool, slots, tables, lens = layer_batch()
    expected = layer_reference(
        w, h.clone(), cos, sin, k_pool.clone(), v_pool.clone(), slots, tables, lens, shape
    )
    without = layer_reference(
        layer_weights(), h.clone(), cos, sin, k_pool.clone(), v_pool.clone(), slots, tables, lens
    )
    assert not torch.allclose(expected, without, rtol=1e-3, atol=1e-3)  # the norms matter
    layer = NativeDecodeLayer(w, shape)
    with torch.inference_mode():
        step = NativeDecodeStep(
            h, slots, tables, lens, torch.float32, layer.workspace_bytes(3, torch.float32)
        )
        layer.check_step(step, k_pool, v_pool, cos)
        layer(step, k_pool, v_pool, cos, sin)
    torch.testing.assert_close(h, expected, rtol=1e-5, atol=1e-5)


def test_bad_optional_norms_are_named() -> None:
    w, norms = layer_weights(), _optional_norms()
    with pytest.raises(ValueError, match="q_norm and k_norm"):
        NativeDecodeLayer(DecodeLayerWeights(**{**w.__dict__, "q_norm": norms["q_norm"]}), SHAPE)
    with pytest.raises(ValueError, match="k_norm"):
        bad = {"q_norm": norms["q_norm"], "k_norm": torch.ones(D + 1)}
        NativeDecodeLayer(DecodeLayerWeights(**{**w.__dict__, **bad}), SHAPE)
    with pytest.raises(ValueError, match="post_ffn_norm"):
        NativeDecodeLayer(
            DecodeLayerWeights(**{**w.__dict__, "post_ffn_norm": torch.ones(HID).half()}), SHAPE
        )


def test_bad_tensors_are_named() -> None:
    w = layer_weights()
    bad = DecodeLayerWeights(**{**w.__dict__, "o_weight": w.o_weight[:, :-1]})
    with pytest.raises(ValueError, match="o_weight"):
        NativeDecodeLayer(bad, SHAPE)
    with pytest.raises(ValueError, match="gate_up_weight"):
        NativeDecodeLayer(
            DecodeLayerWeights(**{**w.__dict__, "gate_up_weight": w.gate_up_weight.half()}), SHAPE
        )
    with pytest.raises(ValueError, match="activation 'relu'"):
        NativeDecodeLayer(w, DecodeLayerShape(**{**SHAPE.__dict__, "activation": "relu"}))
    with pytest.raises(ValueError, match=f"1..{MAX_ROWS}"):
        n = MAX_ROWS + 1
        NativeDecodeStep(torch.zeros(n, HID), torch.zeros(n, dtype=torch.int64), torch.zeros(n, 1, dtype=torch.int64),
                         torch.ones(n, dtype=torch.int64), torch.float32, 1)  # fmt: skip


def test_a_slot_outside_the_cache_is_refused_before_anything_is_written() -> None:
    layer = NativeDecodeLayer(layer_weights(), SHAPE)
    h, cos, sin, k_pool, v_pool, slots, tables, lens = layer_batch()
    slots[1] = 12 * BS  # one past the pool
    before = (h.clone(), k_pool.clone(), v_pool.clone())
    with torch.inference_mode():
        step = NativeDecodeStep(
            h, slots, tables, lens, torch.float32, layer.workspace_bytes(3, torch.float32)
        )
        with pytest.raises(ValueError, match="outside the cache"):
            layer(step, k_pool, v_pool, cos, sin)
    assert (
        torch.equal(h, before[0])
        and torch.equal(k_pool, before[1])
        and torch.equal(v_pool, before[2])
    )


@pytest.mark.parametrize(
    "kv_dtype", [torch.bfloat16, torch.float32], ids=["cache_bf16", "cache_fp32"]
)
def test_bf16_rotation_rounds_like_pytorch(kv_dtype: torch.dtype) -> None:
    """Keys rotated 8 pairs at a time (and the 4-pair tail of a 40-wide head one by one)
    round every product and sum as PyTorch's bf16 ops do: key and value projections both
    copy the normed input, so the cache holds the rotated key next to its unrotated self."""
    hid, heads, dim = 48, 2, 40
    w = layer_weights()
    pick = torch.eye(dim, hid)  # rows: the first `dim` normed inputs, exactly
    qkv = torch.cat((torch.randn(heads * dim, hid), pick, pick))
    weights = DecodeLayerWeights(
        **{
            **w.__dict__,
            "qkv_weight": qkv,
            "qkv_bias": None,
            "o_weight": torch.randn(hid, heads * dim),
        }
    )
    weights = DecodeLayerWeights(
        **{k: v.bfloat16() if v is not None else None for k, v in weights.__dict__.items()}
    )
    shape = DecodeLayerShape(
        **{
            **SHAPE.__dict__,
            "num_heads": heads,
            "num_kv_heads": 1,
            "head_dim": dim,
            "rotary_dim": dim,
        }
    )
    layer = NativeDecodeLayer(weights, shape)
    g = torch.Generator().manual_seed(3)
    rows = 3
    k_pool, v_pool = (
        torch.zeros(4, BS, 1, dim, dtype=kv_dtype),
        torch.zeros(4, BS, 1, dim, dtype=kv_dtype),
    )
    tables, lens = torch.tensor([[0], [1], [2]]), torch.tensor([1, 2, 3])
    slots = tables[:, 0] * BS + lens - 1
    angles = torch.rand(rows, dim // 2, generator=g) * 6
    cos, sin = angles.cos().bfloat16(), angles.sin().bfloat16()
    h = torch.randn(rows, hid, generator=g).bfloat16()
    with torch.inference_mode():
        step = NativeDecodeStep(
            h, slots, tables, lens, torch.bfloat16, layer.workspace_bytes(rows, torch.bfloat16)
        )
        layer(step, k_pool, v_pool, cos, sin)
    x = v_pool.view(-1, dim)[slots].bfloat16()  # the unrotated key, exactly as the kernel had it
    a, b = x[:, : dim // 2], x[:, dim // 2 :]
    expected = torch.cat((a * cos - b * sin, b * cos + a * sin), -1).to(kv_dtype)
    assert torch.count_nonzero(x) > rows * dim // 2
    assert torch.equal(k_pool.view(-1, dim)[slots], expected)
