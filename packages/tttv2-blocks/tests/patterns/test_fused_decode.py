"""TransformerStack's fused decode (one native call per layer) against the same stack run op
by op: the same logits for every layer variant the kernel serves, the op-by-op path for
everything it does not (with the reason), and no stale weights after a change."""

from __future__ import annotations

import contextlib
import gc
import weakref

import pytest
import torch

from tttv2.blocks import PagedKVCache, TransformerStack
from tttv2.core import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    ExecutionMode,
    FeedForwardSpec,
    LMHeadSpec,
    ModelSpec,
    NormSpec,
    RopeSpec,
)
from tttv2.hw.kernels.native.decode_layer import MAX_ROWS, native_decode_layer_available

HIDDEN, VOCAB = 64, 97

with torch.inference_mode():
    if not native_decode_layer_available():
        pytest.skip("the native decode layer kernel cannot be built here", allow_module_level=True)


def _spec(
    *, bias=False, rotary_dim=16, interleaved=False, window=None, activation="silu", unit_offset=False, qk_norm=False,
    softcap=None, kv_heads=2, sandwich=False, scale=None, parallel=False, norm_type="rms",
) -> ModelSpec:  # fmt: skip
    norm = NormSpec(dim=HIDDEN, eps=1e-5, unit_offset=unit_offset, norm_type=norm_type)
    post = (
        NormSpec(dim=HIDDEN, eps=1e-3, unit_offset=unit_offset) if sandwich else None
    )  # its own eps
    rope = (
        RopeSpec(head_dim=16, rotary_dim=rotary_dim, theta=500.0, interleaved=interleaved)
        if rotary_dim
        else None
    )
    attention = AttentionSpec(
        hidden_dim=HIDDEN, num_heads=4, num_kv_heads=kv_heads, head_dim=16, max_seq_len=128, rope=rope,
        qkv_bias=bias, out_bias=bias, sliding_window=window, qk_norm=qk_norm, logit_softcap=softcap,
        qk_norm_unit_offset=qk_norm and unit_offset, qk_norm_eps=1e-4, scale=scale,
    )  # fmt: skip
    ffn = FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=96, activation=activation, bias=bias)
    layer = DecoderLayerSpec(
        attention=attention, ffn=ffn, attn_norm=norm, ffn_norm=norm, post_attn_norm=post, post_ffn_norm=post,
        parallel=parallel,
    )  # fmt: skip
    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN),
        layers=(layer, layer, layer),
        final_norm=norm,
        lm_head=LMHeadSpec(hidden_dim=HIDDEN, vocab_size=VOCAB, tied=False),
        max_seq_len=128,
    )


def _stack(
    spec: ModelSpec, dtype: torch.dtype, fused: bool | None, seed: int = 0
) -> TransformerStack:
    """A random stack; ``fused=None`` leaves fusion to tttv2-hw's choice at the first decode pass."""
    torch.manual_seed(seed)
    stack = TransformerStack(spec)
    with torch.no_grad():
        for p in stack.parameters():
            p.normal_(0.0, 0.3)
    for layer in stack.layers:
        layer.attention.fuse_qkv()
        layer.ffn.fuse_gate_up()
    stack = stack.to(dtype).eval()
    if fused is not None:
        stack.fuse_decode_layers(fused)
    return stack


def _generate(
    stack: TransformerStack, prompts: list[list[int]], steps: int, after_first=None
) -> tuple[list[torch.Tensor], list]:
    """Prefill, then ``steps`` greedy decode passes (calling ``after_first(stack)`` after the
    first); the logits and fused-path reason of each."""
    cache = stack.new_cache(64, 4)
    blocks = cache.block_manager(128)
    out, reasons = [], []
    with torch.inference_mode():
        meta = blocks.prepare(
            list(range(len(prompts))), [len(p) for p in prompts], ExecutionMode.PREFILL
        )
        logits = stack(torch.tensor([t for p in prompts for t in p]), meta, cache)
        for _ in range(steps):
            meta = blocks.prepare(
                list(range(len(prompts))), [1] * len(prompts), ExecutionMode.DECODE
            )
            logits = stack(logits.argmax(-1), meta, cache)
            out.append(logits.float())
            reasons.append(stack.fused_decode_reason)
            if after_first is not None and len(out) == 1:
                after_first(stack)
    return out, reasons


PROMPTS = [[3, 14, 15, 9, 26, 5, 35], [8, 9], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]]
VARIANTS = {
    "gqa": {},
    "mha_bias": {"bias": True, "kv_heads": 4},
    "mqa_partial_interleaved": {"kv_heads": 1, "rotary_dim": 8, "interleaved": True},
    "sliding_window_softcap": {"window": 5, "softcap": 20.0},
    "geglu_unit_offset": {"activation": "gelu_tanh", "unit_offset": True},
    "no_rope": {"rotary_dim": 0},
    "sandwich_norms": {"sandwich": True},  # Gemma 2/3's post-attention and post-feed-forward norms
    "qk_norm": {"qk_norm": True},  # Qwen3
    "attention_scale": {"scale": 0.4},  # Gemma 2's query_pre_attn_scalar ** -0.5
    # Gemma 2/3 as a whole: unit-offset norms everywhere, GeGLU, sandwich norms, QK-norm,
    # soft-capped windowed attention with its own scale
    "gemma_like": {
        "activation": "gelu_tanh", "unit_offset": True, "sandwich": True, "qk_norm": True, "window": 5,
        "softcap": 20.0, "scale": 0.3, "bias": True,
    },
}  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_fused_decode_equals_op_by_op(variant: str, dtype: torch.dtype) -> None:
    spec = _spec(**VARIANTS[variant])
    check_fused_decode_equals_op_by_op(_stack(spec, dtype, True), _stack(spec, dtype, False), dtype)


def check_fused_decode_equals_op_by_op(
    fused_stack: TransformerStack, eager_stack: TransformerStack, dtype: torch.dtype
) -> None:
    """Six greedy decode passes of each: every pass of ``fused_stack`` ran fused (no eager
    reason) and gave ``eager_stack``'s op-by-op logits."""
    fused, reasons = _generate(fused_stack, PROMPTS, 6)
    eager, off = _generate(eager_stack, PROMPTS, 6)
    assert reasons == [None] * 6  # every pass ran fused
    assert_fused_equals_eager(fused, eager, off, dtype)


def assert_fused_equals_eager(
    fused: list[torch.Tensor], eager: list[torch.Tensor], off: list, dtype: torch.dtype
) -> None:
    """The eager passes ran op by op; the same kernels and roundings: only exp inside
    SiLU/tanh-GELU may move a last bit, so nearly every bf16 logit is bit-identical."""
    assert off == ["fuse_decode_layers is off"] * len(eager)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 2**-7, "atol": 2e-2}
    for a, b in zip(fused, eager, strict=True):
        torch.testing.assert_close(a, b, **tol)
    if dtype == torch.bfloat16:
        same = sum(int((a == b).sum()) for a, b in zip(fused, eager, strict=True))
        assert same >= 0.99 * sum(a.numel() for a in fused)


@pytest.mark.parametrize(
    ("spec_args", "why"),
    [
        ({"parallel": True}, "parallel attention and feed-forward"),
        ({"norm_type": "layer"}, "norms are not RMSNorm"),
    ],
    ids=["parallel", "layer_norm"],
)
def test_layers_the_kernel_does_not_compute_run_op_by_op_and_say_why(
    spec_args: dict, why: str
) -> None:
    spec = _spec(**spec_args)
    fused, reasons = _generate(_stack(spec, torch.float32, True), PROMPTS, 3)
    eager, _ = _generate(_stack(spec, torch.float32, False), PROMPTS, 3)
    assert all(r is not None and why in r for r in reasons), reasons
    for a, b in zip(fused, eager, strict=True):
        assert torch.equal(a, b)


def test_more_rows_than_the_kernel_serves_run_op_by_op() -> None:
    prompts = [[i % VOCAB, (3 * i) % VOCAB] for i in range(MAX_ROWS + 1)]
    _, reasons = _generate(_stack(_spec(), torch.float32, True), prompts, 1)
    assert f"{MAX_ROWS + 1} rows" in reasons[0]


def test_forward_hooks_are_honoured() -> None:
    stack = _stack(_spec(), torch.float32, True)
    seen: list[int] = []
    handle = stack.layers[1].ffn.register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
    _, reasons = _generate(stack, PROMPTS, 2)
    assert "hooks" in reasons[0] and seen == [
        sum(map(len, PROMPTS)),
        3,
        3,
    ]  # prefill, two decode passes
    handle.remove()
    _, reasons = _generate(stack, PROMPTS, 1)
    assert reasons == [None]


def test_replaced_weights_are_used_not_the_bound_ones() -> None:
    spec = _spec()
    stack, reference = _stack(spec, torch.float32, True), _stack(spec, torch.float32, False)
    _generate(stack, PROMPTS, 1)  # binds the plans
    for s in (stack, reference):  # a new Parameter object and an in-place change of another
        with torch.no_grad():
            s.layers[0].ffn.down_proj.weight = torch.nn.Parameter(
                s.layers[0].ffn.down_proj.weight * -1.5
            )
            s.layers[2].attention.o_proj.weight.mul_(0.5)
    fused, reasons = _generate(stack, PROMPTS, 3)
    eager, _ = _generate(reference, PROMPTS, 3)
    assert reasons == [None] * 3
    for a, b in zip(fused, eager, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("norm", ["post_attn_norm", "post_ffn_norm", "q_norm", "k_norm"])
def test_replaced_optional_norms_are_used_not_the_bound_ones(norm: str) -> None:
    """The sandwich and QK norms are bound like the rest: a new weight Parameter (or a new
    norm module) after the first pass is what the next fused pass computes with."""
    spec = _spec(sandwich=True, qk_norm=True)
    stack, reference = _stack(spec, torch.float32, True), _stack(spec, torch.float32, False)
    _generate(stack, PROMPTS, 1)  # binds the plans
    for s in (stack, reference):
        layer = s.layers[1]
        owner = layer.attention if norm in ("q_norm", "k_norm") else layer
        module = getattr(owner, norm)
        with torch.no_grad():
            module.weight = torch.nn.Parameter(module.weight * -2.0 + 0.5)
    fused, reasons = _generate(stack, PROMPTS, 3)
    eager, _ = _generate(reference, PROMPTS, 3)
    stale, _ = _generate(_stack(spec, torch.float32, False), PROMPTS, 3)
    assert reasons == [None] * 3
    assert not torch.allclose(stale[0], eager[0], rtol=1e-3, atol=1e-3)  # the change matters
    for a, b in zip(fused, eager, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def _prefill_then_decode(
    stack: TransformerStack, decode_context=torch.inference_mode
) -> PagedKVCache:
    """One 3-token prefill and one decode pass (in ``decode_context``); the cache they used."""
    cache = stack.new_cache(16, 4)
    blocks = cache.block_manager(128)
    with torch.no_grad():
        stack(torch.tensor([1, 2, 3]), blocks.prepare([0], [3], ExecutionMode.PREFILL), cache)
    with decode_context():
        stack(torch.tensor([4]), blocks.prepare([0], [1], ExecutionMode.DECODE), cache)
    return cache


def test_autograd_passes_run_op_by_op() -> None:
    stack = _stack(_spec(), torch.float32, True)
    _prefill_then_decode(stack, contextlib.nullcontext)
    assert "autograd" in stack.fused_decode_reason


def test_a_dropped_cache_is_not_kept_alive_by_the_binding() -> None:
    stack = _stack(_spec(), torch.float32, True)
    cache = _prefill_then_decode(stack)
    assert stack.fused_decode_reason is None
    pools = [weakref.ref(t) for lc in cache.layers for t in (lc.key, lc.value)]
    del cache
    gc.collect()
    assert all(p() is None for p in pools)
    fused, reasons = _generate(stack, PROMPTS, 2)  # and a new cache binds afresh
    eager, _ = _generate(_stack(_spec(), torch.float32, False), PROMPTS, 2)
    assert reasons == [None, None]
    for a, b in zip(fused, eager, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def _scale_weights(stack: TransformerStack) -> None:
    """A new Parameter for one projection, new data under an existing Parameter for another."""
    with torch.no_grad():
        stack.layers[0].ffn.down_proj.weight = torch.nn.Parameter(
            stack.layers[0].ffn.down_proj.weight * -1.5
        )
        o_proj = stack.layers[2].attention.o_proj
        o_proj.weight.data = o_proj.weight.data * 0.5  # the bound storage loses its last owner


def test_captured_decode_equals_checked_decode() -> None:
    captured = _stack(_spec(), torch.bfloat16, True)
    captured.capture_decode()
    fused, reasons = _generate(captured, PROMPTS, 6)
    checked, _ = _generate(_stack(_spec(), torch.bfloat16, True), PROMPTS, 6)
    assert captured.decode_captured and reasons == [None] * 6
    for a, b in zip(fused, checked, strict=True):
        assert torch.equal(a, b)


def test_captured_decode_keeps_its_binding_until_captured_again() -> None:
    spec = _spec()
    stack, before, after = (_stack(spec, torch.float32, flag) for flag in (True, False, False))
    stack.capture_decode()

    def change(s: TransformerStack) -> None:  # between decode passes, after the binding
        _scale_weights(s)
        gc.collect()
        [torch.randn(64, 96) for _ in range(32)]  # reuse of freed memory would show as garbage

    stale, reasons = _generate(stack, PROMPTS, 4, after_first=change)
    assert reasons == [None] * 4
    for a, b in zip(stale, _generate(before, PROMPTS, 4)[0], strict=True):  # the weights it bound
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    _scale_weights(after)
    stack.capture_decode()  # captures the changed model
    for a, b in zip(_generate(stack, PROMPTS, 3)[0], _generate(after, PROMPTS, 3)[0], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_releasing_a_capture_checks_every_pass_again() -> None:
    stack, reference = _stack(_spec(), torch.float32, True), _stack(_spec(), torch.float32, False)
    stack.capture_decode()
    _generate(stack, PROMPTS, 1)
    stack.capture_decode(False)
    _scale_weights(stack)
    _scale_weights(reference)
    for a, b in zip(
        _generate(stack, PROMPTS, 2)[0], _generate(reference, PROMPTS, 2)[0], strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_hooks_present_at_capture_keep_passes_op_by_op() -> None:
    stack = _stack(_spec(), torch.float32, True)
    seen: list[int] = []
    stack.layers[0].attention.register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
    stack.capture_decode()
    _, reasons = _generate(stack, PROMPTS, 2)
    assert all("hooks" in r for r in reasons) and seen == [sum(map(len, PROMPTS)), 3, 3]


def test_capture_before_the_first_decode_pass_applies_to_the_fused_path_made_then() -> None:
    stack = _stack(_spec(), torch.float32, None)  # fusion decided at the first decode pass
    stack.capture_decode()
    stale, reasons = _generate(stack, PROMPTS, 3, after_first=_scale_weights)
    bound, _ = _generate(_stack(_spec(), torch.float32, False), PROMPTS, 3)
    assert reasons == [None] * 3
    torch.testing.assert_close(stale[-1], bound[-1], rtol=1e-5, atol=1e-5)


def test_capture_outlives_turning_fusion_off_and_on() -> None:
    stack = _stack(_spec(), torch.float32, True)
    stack.capture_decode()
    stack.fuse_decode_layers(False)
    stack.fuse_decode_layers(True)
    stale, _ = _generate(stack, PROMPTS, 3, after_first=_scale_weights)
    bound, _ = _generate(_stack(_spec(), torch.float32, False), PROMPTS, 3)
    torch.testing.assert_close(stale[-1], bound[-1], rtol=1e-5, atol=1e-5)  # still captured


def test_moves_casts_and_strategy_switches_recapture_by_themselves() -> None:
    spec = _spec()
    stack = _stack(spec, torch.float32, True)
    stack.capture_decode()
    _generate(stack, PROMPTS, 1)  # binds in float32
    stack.to(torch.bfloat16)
    cast, reasons = _generate(stack, PROMPTS, 3)
    fresh, _ = _generate(_stack(spec, torch.bfloat16, True), PROMPTS, 3)
    assert reasons == [None] * 3
    for a, b in zip(cast, fresh, strict=True):
        assert torch.equal(a, b)
    stack.switch_strategy("unified")  # decode no longer the paged DECODE implementation
    _, reasons = _generate(stack, PROMPTS, 1)
    assert "paged DECODE" in reasons[0]
    stack.switch_strategy("prefill_decode")
    _, reasons = _generate(stack, PROMPTS, 1)
    assert reasons == [None] and stack.decode_captured
