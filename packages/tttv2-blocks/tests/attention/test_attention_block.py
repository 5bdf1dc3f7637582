"""The attention module itself: Hugging Face parameter layout, weights stored once across
modes, QKV fusion, strategies (dynamic, chunk size), bf16, create_module, clear errors."""

from __future__ import annotations

import pytest
import torch
from attention_harness import (
    assert_matches,
    make_attention,
    make_cache,
    random_inputs,
    reference_outputs,
    run_schedule,
)
from torch.utils._python_dispatch import TorchDispatchMode

from tttv2.blocks import Attention, GroupedQueryAttention, MultiHeadAttention, PagedKVCache
from tttv2.core import (
    AttentionSpec,
    DynamicStrategy,
    ExecutionMode,
    ModeNotSupportedError,
    ModuleConfig,
    MultiModeStrategy,
    RopeSpec,
    RuntimeContext,
    create_module,
)

GQA = AttentionSpec(
    hidden_dim=32,
    num_heads=4,
    num_kv_heads=2,
    head_dim=12,
    qkv_bias=True,
    out_bias=True,
    qk_norm=True,
    max_seq_len=64,
)


class CountOps(TorchDispatchMode):
    """Counts every tensor operation run while active."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def test_parameters_use_hugging_face_names_and_shapes() -> None:
    attn = Attention(GQA)
    shapes = {k: tuple(v.shape) for k, v in attn.state_dict().items()}
    assert shapes == {
        "q_proj.weight": (48, 32),
        "q_proj.bias": (48,),
        "k_proj.weight": (24, 32),
        "k_proj.bias": (24,),
        "v_proj.weight": (24, 32),
        "v_proj.bias": (24,),
        "o_proj.weight": (32, 48),
        "o_proj.bias": (32,),
        "q_norm.weight": (12,),
        "k_norm.weight": (12,),
    }
    plain = Attention(AttentionSpec(hidden_dim=16, num_heads=2))
    assert set(plain.state_dict()) == {
        "q_proj.weight",
        "k_proj.weight",
        "v_proj.weight",
        "o_proj.weight",
    }
    assert MultiHeadAttention is Attention and GroupedQueryAttention is Attention


@pytest.mark.parametrize(
    "strategy", ["prefill_decode", "unified", "multi_mode", "continuous_batching", "dynamic"]
)
def test_weights_stored_once_and_mode_switches_allocate_nothing(strategy: str) -> None:
    attn = make_attention(GQA, strategy)
    params = {name: (p, p.data_ptr()) for name, p in attn.named_parameters()}
    for impl in attn.implementations.values():  # implementations hold no tensors
        assert not [v for v in vars(impl).values() if isinstance(v, torch.Tensor)]
        assert not [
            v
            for v in vars(getattr(impl, "kernels", object())).values()
            if isinstance(v, torch.Tensor)
        ]
    modes = attn.supported_modes()
    assert len(modes) >= 1
    cache, manager = make_cache(GQA)
    xs = random_inputs(GQA, {0: 8})
    run_schedule(attn, cache, manager, xs, [(modes[0].value, {0: 4})])
    with CountOps() as counter:
        for mode in modes * 2:
            attn.set_mode(mode)
    assert counter.ops == []
    after = {name: (p, p.data_ptr()) for name, p in attn.named_parameters()}
    assert after.keys() == params.keys()
    assert all(after[n][0] is params[n][0] and after[n][1] == params[n][1] for n in params)


def test_switch_strategy_keeps_the_weights() -> None:
    attn = make_attention(GQA)
    before = [p for p in attn.parameters()]
    attn.switch_strategy(MultiModeStrategy(chunk_size=2))
    assert [p for p in attn.parameters()] == before
    assert ExecutionMode.LONG_CONTEXT in attn.supported_modes()


def test_fuse_qkv_is_the_same_math_with_weights_stored_once() -> None:
    attn = make_attention(GQA)
    xs = random_inputs(GQA, {0: 6, 1: 3})
    schedule = [("prefill", {0: 5, 1: 2}), ("decode", {0: 1, 1: 1})]
    cache, manager = make_cache(GQA)
    before = run_schedule(attn, cache, manager, xs, schedule)
    count = sum(p.numel() for p in attn.parameters())
    attn.fuse_qkv()
    attn.fuse_qkv()  # idempotent
    assert attn.qkv_fused and attn.q_proj is None and attn.k_proj is None and attn.v_proj is None
    assert sum(p.numel() for p in attn.parameters()) == count
    assert "qkv_proj.weight" in attn.state_dict() and "q_proj.weight" not in attn.state_dict()
    cache, manager = make_cache(GQA)
    after = run_schedule(attn, cache, manager, xs, schedule)
    for s in xs:
        assert_matches(after[s], before[s], torch.float32, "fused vs separate")


def test_rope_is_applied_to_q_and_k_after_qk_norm() -> None:
    spec = AttentionSpec(
        hidden_dim=32,
        num_heads=4,
        num_kv_heads=1,
        head_dim=8,
        qk_norm=True,
        max_seq_len=64,
        rope=RopeSpec(head_dim=8, theta=50.0),
    )
    attn = make_attention(spec)
    assert attn.rotary is not None
    xs = random_inputs(spec, {0: 9})
    cache, manager = make_cache(spec)
    got = run_schedule(
        attn, cache, manager, xs, [("prefill", {0: 6}), ("decode", {0: 1}), ("decode", {0: 1})]
    )
    assert_matches(got[0], reference_outputs(attn, {0: xs[0][:8]})[0], torch.float32, "rope")


def test_long_context_uses_the_strategy_chunk_size() -> None:
    attn = make_attention(GQA, MultiModeStrategy(chunk_size=4))
    impl = attn.implementations[ExecutionMode.LONG_CONTEXT]
    calls: list[tuple[int, int]] = []
    kernel = impl.kernels.prefill_kernel

    def counting(q, k, v, **kw):
        calls.append((q.shape[2], k.shape[2]))  # (queries, keys) per call
        return kernel(q, k, v, **kw)

    impl.kernels.prefill_kernel = counting
    cache, manager = make_cache(GQA)
    run_schedule(attn, cache, manager, random_inputs(GQA, {0: 10}), [("long_context", {0: 10})])
    assert calls == [(4, 4), (4, 8), (2, 10)]


def test_dynamic_strategy_switches_to_chunked_prefill_for_long_prompts() -> None:
    attn = make_attention(
        GQA,
        DynamicStrategy(
            rules=[
                {
                    "strategy": "multi_mode",
                    "when": {"min_seq_len": 9},
                    "remap": {"prefill": "long_context"},
                }
            ]
        ),
    )
    xs = random_inputs(GQA, {0: 12})
    attn.set_mode("prefill", RuntimeContext(seq_len=12, num_new_tokens=12))
    assert attn._active is attn.implementations[ExecutionMode.LONG_CONTEXT]
    cache, manager = make_cache(GQA)
    with torch.inference_mode():
        meta = manager.prepare([0], [12], "prefill")
        got = attn(xs[0], meta, cache.layer(0))
    assert_matches(got, reference_outputs(attn, xs)[0], torch.float32, "dynamic")
    attn.set_mode("prefill", RuntimeContext(seq_len=4))
    assert attn._active is attn.implementations[ExecutionMode.PREFILL]


@pytest.mark.parametrize("cache_dtype", [torch.bfloat16, torch.float32])
def test_bf16_matches_reference_loosely(cache_dtype: torch.dtype) -> None:
    spec = AttentionSpec(
        hidden_dim=64, num_heads=8, num_kv_heads=2, qkv_bias=True, sliding_window=5, max_seq_len=64
    )
    attn = make_attention(spec, "continuous_batching", dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in attn.parameters())
    xs = random_inputs(spec, {0: 12, 1: 7}, dtype=torch.bfloat16)
    cache, manager = make_cache(spec, dtype=cache_dtype)
    schedule = [
        ("prefill", {0: 9, 1: 3}),
        ("decode", {0: 1, 1: 1}),
        ("continuous_batch", {0: 2, 1: 3}),
    ]
    got = run_schedule(attn, cache, manager, xs, schedule)
    want = reference_outputs(attn, xs)
    for s in xs:
        assert_matches(got[s], want[s], torch.bfloat16, f"bf16 sequence {s}")


def test_create_module_builds_attention() -> None:
    attn = create_module(ModuleConfig(spec=GQA, execution_strategy="multi_mode"))
    assert isinstance(attn, Attention)
    assert ExecutionMode.SPECULATIVE in attn.supported_modes()


def test_bad_inputs_are_reported_clearly() -> None:
    attn = make_attention(GQA)
    cache, manager = make_cache(GQA)
    meta = manager.prepare([0], [3], "prefill")
    x = torch.randn(3, 32)
    with pytest.raises(ValueError, match=r"x must be \[T, 32\]"):
        attn.prefill_forward(torch.randn(3, 31), meta, cache.layer(0))
    with pytest.raises(ValueError, match="x has 4 tokens but meta describes 3"):
        attn.prefill_forward(torch.randn(4, 32), meta, cache.layer(0))
    other = PagedKVCache.for_specs(
        [AttentionSpec(hidden_dim=32, num_heads=4)], num_blocks=4, block_size=4
    )
    with pytest.raises(ValueError, match="cache holds 4 KV heads of 8; the spec needs 2 of 12"):
        attn.prefill_forward(x, meta, other.layer(0))
    with pytest.raises(TypeError, match="LayerKVCache"):
        attn.prefill_forward(x, meta, cache)
    with pytest.raises(ValueError, match="exactly one new token per sequence"):
        attn.decode_forward(x, meta, cache.layer(0))
    with pytest.raises(TypeError, match="needs an AttentionSpec"):
        Attention(RopeSpec(head_dim=8))
    with pytest.raises(ModeNotSupportedError):
        attn.run_in_mode("long_context", x, meta, cache.layer(0))
