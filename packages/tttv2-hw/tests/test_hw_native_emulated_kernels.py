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

from tttv2.hw.kernels.native import build_native, forget_native_functions
from tttv2.hw.kernels.native.decode_layer import decode_layer_kernel
from tttv2.hw.kernels.native.decode_stack import decode_stack_kernel
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


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
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
