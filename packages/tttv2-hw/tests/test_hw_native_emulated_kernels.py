"""The AVX-512 and AVX-512-BF16 code paths of the native kernels, run on this host emulated
(``TTTV2_NATIVE_EMULATE``: SIMDe on AVX2, ``tttv2.hw.kernels.native.emulate``) through the
checks the native kernels' own tests make: the decode layer (fp32, bf16, int8 weights), the
fused decode stack, a mixture-of-experts layer, the routed experts and the few-row product.

Each test first checks that the kernel function it calls is the emulated build's (the
normal path, ``native_function``, picked it up from the environment). Emulation checks the
code's logic (indexing, blocking, tails, dtypes, bf16 pairing), not its speed nor
``vdpbf16ps``'s exact rounding, so the checks' tolerances are the AVX2 build's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import test_hw_kernels_skinny_linear as skinny_tests
import test_hw_native_decode_layer as layer_tests
import test_hw_native_decode_layer_int8 as int8_tests
import test_hw_native_decode_moe as moe_tests
import test_hw_native_decode_stack as stack_tests
import test_hw_native_routed_experts as routed_tests
import torch
from hw_close import assert_close
from hw_emulation import address, needs_emulation

from tttv2.hw.kernels.decode_layers import DecodeMoE
from tttv2.hw.kernels.native import build_native, forget_native_functions
from tttv2.hw.kernels.native.decode_layer import (
    DecodeLayerWeights,
    NativeDecodeLayer,
    NativeDecodeStep,
    decode_layer_kernel,
)
from tttv2.hw.kernels.native.decode_stack import NativeDecodeStack, decode_stack_kernel
from tttv2.hw.kernels.native.emulate import EMULATE_ENV, missing_simde, simde_include
from tttv2.hw.kernels.native.routed_experts import routed_experts_kernel
from tttv2.hw.kernels.native.skinny_linear import (
    skinny_int8_kernel,
    skinny_int8_linear,
    skinny_kernel,
)

pytestmark = needs_emulation()


@pytest.fixture(params=["avx512f", "avx512_bf16"])
def emulated(request, monkeypatch) -> Iterator[str]:
    """``TTTV2_NATIVE_EMULATE`` set to the variant for one test; the native functions this
    process looked up are forgotten before and after, so no other test sees the build."""
    assert simde_include() is not None, missing_simde()  # CI=true: fail, never skip
    with monkeypatch.context() as m:
        m.setenv(EMULATE_ENV, request.param)
        forget_native_functions()
        yield request.param
    forget_native_functions()


def _ran_emulated(kernel: str, symbol: str, fn, isa: str) -> None:
    """``fn`` is ``symbol`` of the emulated ``isa`` build of ``kernel``."""
    build = build_native(kernel)  # the environment's choice, loaded from the cache
    assert build.emulated and build.variant == isa, (build.variant, build.reason)
    assert EMULATE_ENV in build.reason
    assert address(fn) == address(getattr(build.library, symbol))


def test_decode_layer_fp32(emulated: str) -> None:
    layer_tests.test_layer_equals_plain_pytorch()
    layer_tests.test_optional_norms_equal_plain_pytorch("qk_norm_unit_offset_and_sandwich")
    _ran_emulated("decode_layer", "tttv2_decode_layer", decode_layer_kernel(), emulated)


@pytest.mark.parametrize(
    "kv_dtype", [torch.bfloat16, torch.float32], ids=["cache_bf16", "cache_fp32"]
)
def test_decode_layer_bf16(emulated: str, kv_dtype: torch.dtype) -> None:
    layer_tests.test_bf16_rotation_rounds_like_pytorch(kv_dtype)
    _ran_emulated("decode_layer", "tttv2_decode_layer", decode_layer_kernel(), emulated)


def _bf16(w: DecodeLayerWeights) -> DecodeLayerWeights:
    return DecodeLayerWeights(
        **{k: (v.bfloat16() if v is not None else None) for k, v in w.__dict__.items()}
    )


def _run_bf16(layers, router_rows: int = 3) -> torch.Tensor:
    """One bf16 decode step of ``layers`` in one stack call (the batch of the layer tests)."""
    h, cos, sin, k_pool, v_pool, slots, tables, lens = layer_tests.layer_batch(router_rows)
    h, cos, sin, k_pool, v_pool = (t.bfloat16() for t in (h, cos, sin, k_pool, v_pool))
    cos_rows, sin_rows = torch.zeros_like(cos), torch.zeros_like(sin)
    cos_rows[:], sin_rows[:] = cos, sin
    n = len(layers)
    stack = NativeDecodeStack(
        layers, [k_pool.clone() for _ in layers], [v_pool.clone() for _ in layers],
        [cos_rows] * n, [sin_rows] * n,
    )  # fmt: skip
    ws = max(layer.workspace_bytes(router_rows, torch.bfloat16) for layer in layers)
    with torch.inference_mode():
        stack(NativeDecodeStep(h, slots, tables, lens, torch.bfloat16, ws))
    return h.double()


def test_decode_layer_bf16_is_close_to_plain_pytorch(emulated: str) -> None:
    """bf16 activations x bf16 weights (vdpbf16ps in the avx512_bf16 build) against the fp32
    reference of the same bf16 numbers: norm-wise within 2% (measured: 0.6%; the layer rounds
    every intermediate to bf16, as the op-by-op blocks do)."""
    w = _bf16(layer_tests.layer_weights())
    h, cos, sin, k_pool, v_pool, slots, tables, lens = layer_tests.layer_batch()
    h, cos, sin, k_pool, v_pool = (t.bfloat16().float() for t in (h, cos, sin, k_pool, v_pool))
    as_fp32 = DecodeLayerWeights(
        **{k: (v.float() if v is not None else None) for k, v in w.__dict__.items()}
    )
    expected = layer_tests.layer_reference(
        as_fp32, h, cos, sin, k_pool, v_pool, slots, tables, lens
    )
    got = _run_bf16([NativeDecodeLayer(w, layer_tests.SHAPE)])
    assert (got - expected.double()).norm() <= 2e-2 * expected.double().norm()
    _ran_emulated("decode_layer", "tttv2_decode_layers", decode_stack_kernel(), emulated)


def test_decode_moe_layer_bf16(emulated: str) -> None:
    """A bf16 MoE layer whose shared expert is the dense layer's feed-forward: the same layer
    plus the routed experts of the rows its router was handed (float64), within bf16's
    roundings of the sum (3%; measured: 0.7%)."""
    layer = _bf16(layer_tests.layer_weights(seed=1))
    experts = [tuple(t.bfloat16() for t in e) for e in moe_tests.expert_weights()]
    router = moe_tests.Router()
    moe = NativeDecodeLayer(layer, layer_tests.SHAPE, DecodeMoE(experts, router, "silu"))
    got = _run_bf16([moe])
    dense = _run_bf16([NativeDecodeLayer(layer, layer_tests.SHAPE)])
    routed = moe_tests.routed_reference(router.seen[0].double(), experts)
    assert routed.norm() > 0.2 * dense.norm()  # the experts do count
    assert (got - dense - routed).norm() <= 3e-2 * routed.norm()
    _ran_emulated("decode_layer", "tttv2_decode_layers", decode_stack_kernel(), emulated)


def test_decode_layer_int8_weights(emulated: str) -> None:
    """fp32 and bf16 activations against int8 codes; the bf16 layer it is compared with
    multiplies bf16 by bf16 (vdpbf16ps in the avx512_bf16 build)."""
    int8_tests.test_int8_layer_equals_the_dequantised_layer(True)
    int8_tests.test_bf16_int8_layer_is_close_to_the_bf16_layer_of_its_round_trip()
    _ran_emulated("decode_layer", "tttv2_decode_layer", decode_layer_kernel(), emulated)


def test_decode_stack(emulated: str) -> None:
    stack_tests.test_one_call_equals_the_layers_one_by_one()
    _ran_emulated("decode_layer", "tttv2_decode_layers", decode_stack_kernel(), emulated)


def test_decode_moe_layer(emulated: str) -> None:
    moe_tests.test_a_moe_layer_adds_the_experts_its_router_chose("gated")
    _ran_emulated("decode_layer", "tttv2_decode_layers", decode_stack_kernel(), emulated)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize(("tokens", "top_k"), [(1, 2), (8, 4), (16, 1)])
def test_routed_experts(emulated: str, dtype: torch.dtype, tokens: int, top_k: int) -> None:
    routed_tests.test_native_routed_experts_match_reference(dtype, "silu", tokens, top_k)
    _ran_emulated("routed_experts", "tttv2_routed_experts", routed_experts_kernel(), emulated)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_routed_experts_any_thread_count(emulated: str, dtype: torch.dtype) -> None:
    before = torch.get_num_threads()
    try:  # bit-identical to one thread, the chunks cutting rows mid-vector
        routed_tests.test_native_routed_experts_any_thread_count(
            torch.set_num_threads, 2, dtype, 13, 3
        )
    finally:
        torch.set_num_threads(before)
    _ran_emulated("routed_experts", "tttv2_routed_experts", routed_experts_kernel(), emulated)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("rows", [1, 3, 4, 5, 16])
def test_skinny_linear(emulated: str, dtype: torch.dtype, rows: int) -> None:
    skinny_tests.test_skinny_linear_matches_reference(dtype, rows, True)
    _ran_emulated("skinny_linear", "tttv2_skinny_linear", skinny_kernel(), emulated)


def test_skinny_linear_any_shape(emulated: str) -> None:
    """Hypothesis: every row count, N and K up to 70 and 80 (all the tails), every dtype."""
    skinny_tests.test_skinny_linear_any_shape()
    _ran_emulated("skinny_linear", "tttv2_skinny_linear", skinny_kernel(), emulated)


def test_skinny_linear_bf16_rounding_chunks_and_specials(emulated: str, monkeypatch) -> None:
    skinny_tests.test_bf16_result_is_the_fp32_product_rounded_once()
    skinny_tests.test_many_chunks_and_threads_give_the_same_result(monkeypatch)
    skinny_tests.test_nan_and_inf_propagate()
    _ran_emulated("skinny_linear", "tttv2_skinny_linear", skinny_kernel(), emulated)


def test_skinny_linear_int8_weights(emulated: str) -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 203, generator=g)
    q = torch.randint(-127, 128, (37, 203), generator=g, dtype=torch.int8)
    scale = torch.rand(37, generator=g) / 500 + 1e-3
    b = torch.randn(37, generator=g)
    for dtype in (torch.float32, torch.bfloat16):
        y = skinny_int8_linear(x.to(dtype), q, scale, b.to(dtype))
        ref = x.to(dtype).double() @ (q.double() * scale.double()[:, None]).T + b.to(dtype).double()
        atol, rtol = skinny_tests.TOLERANCE[dtype]
        assert_close(y, ref, atol=atol, rtol=rtol)
    _ran_emulated("skinny_linear", "tttv2_skinny_linear_scaled", skinny_int8_kernel(), emulated)
