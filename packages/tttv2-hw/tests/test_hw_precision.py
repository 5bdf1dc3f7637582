"""Block-float formats and precision policies without ttnn (bit-exactness against ttnn lives
in packages/tttv2-hw/tests_ttnn, its own CI job). Expected values are worked out by hand
from the format's definition: 7 (bfloat8_b) or 3 (bfloat4_b) magnitude bits under one
exponent per 16 values."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tttv2.core.errors import UnknownNameError
from tttv2.hw import DeviceConfig
from tttv2.hw.precision import (
    PRESETS,
    PrecisionPolicy,
    PrecisionPolicyError,
    block_float_round_trip,
    format_bytes,
    get_precision_policy,
    int8_round_trip,
    pack_block_float,
    packed_bytes,
    round_trip_weight,
    tile_bytes,
    tilize,
    unpack_block_float,
    untilize,
)

FORMATS = {"bfloat8_b": 7, "bfloat4_b": 3}


def test_tile_sizes_are_exponents_plus_mantissas():
    # 64 exponent bytes (4 faces x 16 rows) + 1024 one-byte or 512 two-per-byte codes
    assert tile_bytes("bfloat8_b") == 64 + 1024 == 1088
    assert tile_bytes("bfloat4_b") == 64 + 512 == 576
    assert packed_bytes((70, 100), "bfloat8_b") == 3 * 4 * 1088  # padded to 96 x 128
    assert packed_bytes((2, 32, 33), "bfloat4_b") == 2 * 2 * 576
    with pytest.raises(UnknownNameError):
        tile_bytes("bfloat2_b")


@pytest.mark.parametrize("shape", [(32, 32), (70, 100), (3, 40, 50), (17,)])
def test_tilize_untilize_inverse_and_zero_padding(shape):
    x = torch.arange(math.prod(shape), dtype=torch.float32).reshape(shape) + 1
    tiles = tilize(x)
    assert torch.equal(untilize(tiles, shape), x)
    assert int((tiles != 0).sum()) == x.numel()  # every other slot is zero padding


def test_tile_order_faces_then_rows():
    """Element (r, c) of a 32x32 tile sits in face (r // 16) * 2 + c // 16 at (r % 16, c % 16);
    tiles go row-major over the matrix."""
    x = torch.zeros(32, 64)
    x[0, 16] = 1.0  # face 1 of tile 0
    x[17, 3] = 2.0  # face 2, row 1, col 3 of tile 0
    x[5, 40] = 3.0  # tile 1, face 0, row 5, col 8
    t = tilize(x)
    assert t[0, 1, 0, 0] == 1.0 and t[0, 2, 1, 3] == 2.0 and t[1, 0, 5, 8] == 3.0
    p = pack_block_float(x, "bfloat8_b")
    # exponents: one byte per face row, face-major; codes follow in the same order
    assert p.exponents[0, 16 + 0] == 127 and p.exponents[0, 32 + 1] == 128
    assert p.mantissas[0, 256 + 0] == 64  # 1.0 = 1.000000b under exponent 127
    assert p.mantissas[0, 512 + 16 + 3] == 64  # 2.0 under exponent 128
    assert p.exponents[1, 5] == 128 and p.mantissas[1, 5 * 16 + 8] == 96  # 3.0 = 1.1b x 2


def test_bfloat4_nibbles_low_first():
    x = torch.zeros(32, 32)
    x[0, 0], x[0, 1] = 1.0, -0.5  # shared exponent 127: codes 0b0100 and 0b1010
    p = pack_block_float(x, "bfloat4_b")
    assert int(p.mantissas[0, 0]) == 0x4 | (0xA << 4)


def test_round_half_to_even_and_saturation():
    # exponent 127 shared (first value 1.0); 7 bits: steps of 1/64
    x = torch.tensor([1.0, 1 + 1 / 128, 1 + 3 / 128, 1.9999] + [0.0] * 12)
    y = block_float_round_trip(x, "bfloat8_b")
    assert y[1] == 1.0  # tie, even (64) kept
    assert y[2] == 1 + 2 / 64  # tie, odd (65) rounds up to 66
    assert y[3] == 127 / 64  # rounds to 128/64 but saturates at 127 (no exponent carry)


def test_round_half_examples_exact():
    x = torch.tensor([1.0, 0.5 + 1 / 256, 0.5 + 3 / 256] + [0.0] * 13)
    y = block_float_round_trip(x, "bfloat8_b")
    # in 1/64 units: 32.25 -> 32 (below the tie), 32.75 -> 33
    assert y[1] == 32 / 64 and y[2] == 33 / 64


def test_one_huge_value_zeroes_its_16_neighbours_only():
    x = torch.ones(2, 32)
    x[0, 3] = 2.0**20
    y = block_float_round_trip(x, "bfloat8_b")
    assert y[0, 3] == 2.0**20
    assert torch.all(y[0, :16][torch.arange(16) != 3] == 0)  # 1.0 needs 20 bits more than 7
    assert torch.all(y[0, 16:] == 1) and torch.all(y[1] == 1)


def test_inf_nan_zero_and_subnormal_handling():
    row = torch.tensor([float("inf"), 1.0] + [0.0] * 14)
    y = block_float_round_trip(row, "bfloat8_b")
    assert y[0] == float("inf") and y[1] == 0  # exponent 255 shared: finite values vanish
    neg = block_float_round_trip(torch.tensor([float("-inf")] + [0.0] * 15), "bfloat4_b")
    assert neg[0] == float("-inf")
    nan = block_float_round_trip(torch.tensor([float("nan")] + [1.0] * 15), "bfloat8_b")
    assert torch.isnan(nan[0]) and torch.all(nan[1:] == 0)
    sub = torch.tensor([1e-40, -1e-41] + [0.0] * 14)  # float32 subnormals flush to +0
    z = block_float_round_trip(sub, "bfloat8_b")
    assert torch.all(z == 0) and not torch.signbit(z).any()
    negzero = block_float_round_trip(torch.tensor([-0.0, -1e-30, 1.0] + [0.0] * 13), "bfloat8_b")
    assert negzero[0] == 0 and not torch.signbit(negzero[:2]).any()  # no negative zero


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 40),
    cols=st.integers(1, 70),
    scale=st.floats(1e-20, 1e20),
    seed=st.integers(0, 2**16),
    fmt=st.sampled_from(sorted(FORMATS)),
)
def test_round_trip_error_bound(rows, cols, scale, seed, fmt):
    """|y - x| <= 2**(shared - bits + 1) per value: half a step of the 16-value row's grid
    plus one step lost to saturation; unpack(pack(x)) equals the round trip; idempotent."""
    x = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)) * scale
    bits = FORMATS[fmt]
    y = block_float_round_trip(x, fmt)
    assert y.shape == x.shape
    pad = (-cols) % 16
    groups = torch.nn.functional.pad(x, (0, pad)).reshape(rows, -1, 16)
    shared = torch.frexp(groups.abs().amax(-1))[1].float()  # max = m * 2**e, m in [0.5, 1)
    step = torch.exp2(shared - bits)  # value of one magnitude step
    bound = step.repeat_interleave(16, dim=-1)[:, :cols]
    assert torch.all((y - x).abs() <= bound)
    assert torch.equal(unpack_block_float(pack_block_float(x, fmt)), y)
    assert torch.equal(block_float_round_trip(y, fmt), y)


def test_bfloat16_input_keeps_dtype_and_values_are_exact_in_bf16():
    x = torch.randn(64, 48).to(torch.bfloat16)
    y = block_float_round_trip(x, "bfloat8_b")
    assert y.dtype == torch.bfloat16
    assert torch.equal(y.float(), block_float_round_trip(x.float(), "bfloat8_b"))


def test_matmul_weights_share_exponents_along_the_output_dimension():
    """TT stores linear weights transposed ([in, out]); a [out, in] weight's shared exponent
    groups are therefore 16 output channels of one input column."""
    w = torch.ones(32, 32)
    w[0, 0] = 2.0**20  # output channel 0, input 0
    y = round_trip_weight(w, "bfloat8_b")
    assert torch.all(y[1:16, 0] == 0)  # same input column, output channels 1..15: zeroed
    assert torch.all(y[0, 1:] == 1)  # same output channel, other inputs: untouched
    y_rows = round_trip_weight(w, "bfloat8_b", matmul=False)
    assert torch.all(y_rows[0, 1:16] == 0) and torch.all(y_rows[1:, 0] == 1)


def test_int8_per_output_channel_symmetric():
    w = torch.tensor([[1.0, -0.5, 0.25], [100.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    y = int8_round_trip(w)
    assert torch.equal(y[0], torch.round(w[0] * 127) / 127)  # scale 1/127
    assert y[1, 0] == 100.0 and y[1, 1] == pytest.approx(100 / 127)  # 1.0 -> 1 step of 100/127
    assert torch.all(y[2] == 0)
    assert format_bytes((3, 3), "int8") == 9 + 3 * 4


def test_presets_follow_tt_transformers():
    perf, acc = PRESETS["performance"], PRESETS["accuracy"]
    assert perf.weight_format("w1_w3") == "bfloat4_b"
    assert {perf.weight_format(r) for r in ("wqkv", "wo", "w2", "lm_head")} == {"bfloat8_b"}
    assert perf.kv_cache == "bfloat8_b" and perf.weight_format("embedding") == "bfloat16"
    assert acc.weight_format("wqkv") == "bfloat16" and acc.kv_cache == "bfloat16"
    assert {acc.weight_format(r) for r in ("wo", "w1_w3", "w2")} == {"bfloat8_b"}
    assert get_precision_policy("int8").weight_format("w2") == "int8"


def test_policy_errors_name_field_and_valid_values():
    with pytest.raises(UnknownNameError):
        get_precision_policy("turbo")
    with pytest.raises(PrecisionPolicyError, match="w4"):
        PrecisionPolicy("x", {"w4": "bfloat8_b"})
    with pytest.raises(PrecisionPolicyError, match="bfloat2_b"):
        PrecisionPolicy("x", {"w2": "bfloat2_b"})
    assert issubclass(PrecisionPolicyError, ValueError)
    custom = PRESETS["performance"].with_weights(w2="bfloat4_b")
    assert custom.weight_format("w2") == "bfloat4_b" and custom.weight_format("wo") == "bfloat8_b"


def test_tt_profiles_select_performance_and_any_profile_can_be_told():
    tt = DeviceConfig.auto_detect("tt:N150").get_optimal_params("model", "decode")
    assert tt.precision == "performance"  # type: ignore[attr-defined]
    cpu = DeviceConfig.auto_detect("cpu:avx2")
    assert cpu.get_optimal_params("model", "decode").precision is None  # type: ignore[attr-defined]
    told = DeviceConfig.auto_detect("cpu:avx2", params={"model": {"precision": "accuracy"}})
    assert told.get_optimal_params("model", "decode").precision == "accuracy"  # type: ignore[attr-defined]
