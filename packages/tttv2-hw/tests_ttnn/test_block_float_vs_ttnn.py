"""tttv2.hw.precision.block_float against ttnn's own host packer, bit for bit.

Runs only in the ttnn environment (``uv run python ci/ttnn_job.py``): ttnn==0.81.1 on
CPython 3.12 with ``TT_METAL_MOCK_CLUSTER_DESC_PATH`` pointing at the Wormhole N150
descriptor beside this file. Two things are compared for every case:

* the bytes ttnn stores (``from_torch(..., TILE_LAYOUT)``'s host buffer) with
  :func:`pack_block_float`'s bytes;
* the float32 bit patterns ``ttnn.to_torch`` gives back with :func:`unpack_block_float`'s
  and :func:`block_float_round_trip`'s (nan payloads and zero signs included).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ttnn = pytest.importorskip("ttnn", reason="the ttnn job installs ttnn; see ci/ttnn_job.py")

from tttv2.hw.precision import (  # noqa: E402
    block_float_round_trip,
    pack_block_float,
    unpack_block_float,
)

FORMATS = {"bfloat8_b": ttnn.bfloat8_b, "bfloat4_b": ttnn.bfloat4_b}


def _ttnn_bytes_and_values(x: torch.Tensor, fmt: str) -> tuple[torch.Tensor, torch.Tensor]:
    t = ttnn.from_torch(x, dtype=FORMATS[fmt], layout=ttnn.TILE_LAYOUT)
    shard = t.host_buffer().get_shard(ttnn.MeshCoordinate(0, 0))
    stored = torch.from_dlpack(shard).clone().view(torch.uint8).reshape(-1)
    values = ttnn.to_torch(t).to(torch.float32)
    return stored, values


def _bits(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float32).contiguous().view(torch.int32)


def assert_bit_exact(x: torch.Tensor, fmt: str) -> None:
    stored, values = _ttnn_bytes_and_values(x, fmt)
    ours = pack_block_float(x, fmt)
    assert stored.numel() == ours.data.numel(), (stored.numel(), ours.data.numel())
    mismatch = (stored != ours.data.reshape(-1)).nonzero().flatten()
    assert mismatch.numel() == 0, (
        f"{fmt} {tuple(x.shape)}: {mismatch.numel()} stored bytes differ, first at "
        f"{mismatch[:8].tolist()}: ttnn {stored[mismatch[:8]].tolist()} "
        f"ours {ours.data.reshape(-1)[mismatch[:8]].tolist()}"
    )
    assert values.shape == x.shape
    unpacked = unpack_block_float(ours)
    diff = (_bits(values) != _bits(unpacked)).nonzero()
    assert diff.shape[0] == 0, (
        f"{fmt} {tuple(x.shape)}: {diff.shape[0]} unpacked values differ, first at "
        f"{diff[:4].tolist()}: ttnn {values[tuple(diff[0])]!r} ours {unpacked[tuple(diff[0])]!r}"
    )
    assert torch.equal(_bits(block_float_round_trip(x, fmt)), _bits(values))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_normal(shape, seed=0, scale=1.0):
    return torch.randn(shape, generator=_gen(seed)) * scale


def mixed_magnitudes(shape, seed=1):
    """Exponents spread over 2**-100 .. 2**100 with random signs: exercises alignment
    shifts of every size, including >= 32 (the value drops to 0)."""
    g = _gen(seed)
    e = torch.randint(-100, 100, shape, generator=g).to(torch.float32)
    m = 1 + torch.rand(shape, generator=g)
    s = torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0)
    return s * m * torch.exp2(e)


def subnormals(shape, seed=2):
    """float32 subnormals alone, beside tiny normals (the shared exponent is 1..3, so the
    unpacked exponent would go negative: flushed), and beside ordinary values."""
    g = _gen(seed)
    x = torch.randint(1, 1 << 23, shape, generator=g, dtype=torch.int32).view(torch.float32)
    x = x * torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0)
    tiny = (
        torch.tensor(2.0**-126)
        * (1 + torch.rand(shape, generator=g))
        * torch.exp2(torch.randint(0, 3, shape, generator=g).to(torch.float32))
    )
    pick = torch.randint(0, 3, shape, generator=g)
    return torch.where(pick == 0, x, torch.where(pick == 1, tiny, torch.randn(shape, generator=g)))


def specials(shape, seed=3):
    """inf, -inf, nans (quiet, signalling-style payloads, negative), +-0 and finite values
    sharing rows with them."""
    g = _gen(seed)
    x = torch.randn(shape, generator=g)
    words = (
        torch.tensor(
            [
                0x7F800000,
                0xFF800000,
                0x7FC00000,
                0x7F800001,
                0xFFC00000,
                0x7FBFFFFF,
                0x00000000,
                0x80000000,
                0x7F7FFFFF,
                0xFF7FFFFF,
            ],
            dtype=torch.int64,
        )
        .to(torch.int32)
        .view(torch.float32)
    )
    idx = torch.randint(0, words.numel(), shape, generator=g)
    return torch.where(torch.rand(shape, generator=g) < 0.1, words[idx], x)


def zeros_and_signed_zeros(shape, seed=4):
    g = _gen(seed)
    x = torch.zeros(shape)
    x = torch.where(torch.rand(shape, generator=g) < 0.5, -x, x)
    x[..., : shape[-1] // 2] = torch.randn(shape[:-1] + (shape[-1] // 2,), generator=g) * 1e-3
    return x


def one_huge_per_row(shape, seed=5):
    """Every 16-value row holds one value 2**40 times larger: its neighbours lose all bits."""
    g = _gen(seed)
    x = torch.randn(shape, generator=g)
    cols = torch.arange(shape[-1])
    x = torch.where(cols % 16 == 7, x.sign() * 1e12, x)
    return x


def rounding_ties(shape, seed=6, fmt_bits=7):
    """Values exactly half-way between two representable magnitudes (round half to even),
    just above and below, and values that round up past the largest magnitude."""
    g = _gen(seed)
    k = torch.randint(0, 1 << fmt_bits, shape, generator=g).to(torch.float32)
    offset = torch.tensor([0.5, 0.5 - 2**-12, 0.5 + 2**-12, 0.0, 0.999])[
        torch.randint(0, 5, shape, generator=g)
    ]
    x = (k + offset) / (1 << (fmt_bits - 1))  # one row's largest exponent is 0 (values < 2)
    x[..., 0] = 1.0  # pins the shared exponent to 127 in every row
    return x * torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0)


def weight_like(shape, seed=7):
    """A linear layer's weight as checkpoints have them: bf16, std ~0.02, a few outlier
    input channels 30x larger, and a near-one norm-like row."""
    g = _gen(seed)
    w = torch.randn(shape, generator=g) * 0.02
    outliers = torch.randint(0, shape[-1], (max(1, shape[-1] // 64),), generator=g)
    w[..., outliers] *= 30
    w[..., 0, :] = 1 + 0.05 * torch.randn(shape[-1], generator=g)
    return w.to(torch.bfloat16)


CASES = {
    "random_normal": lambda s: random_normal(s),
    "random_normal_large": lambda s: random_normal(s, seed=10, scale=3e4),
    "random_uniform_bf16": lambda s: (torch.rand(s, generator=_gen(11)) - 0.5).to(torch.bfloat16),
    "mixed_magnitudes": mixed_magnitudes,
    "subnormals": subnormals,
    "specials_inf_nan": specials,
    "zeros": zeros_and_signed_zeros,
    "all_zero": lambda s: torch.zeros(s),
    "one_huge_per_row": one_huge_per_row,
    "weight_like_bf16": weight_like,
}
SHAPES = [(32, 32), (64, 96), (70, 100), (3, 40, 50), (1, 17)]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("case", sorted(CASES))
def test_bit_exact(case: str, shape: tuple[int, ...], fmt: str) -> None:
    assert_bit_exact(CASES[case](shape), fmt)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_rounding_ties_bit_exact(fmt: str) -> None:
    bits = 7 if fmt == "bfloat8_b" else 3
    assert_bit_exact(rounding_ties((64, 64), fmt_bits=bits), fmt)


def test_real_size_weight_bit_exact() -> None:
    """A 576x1536 projection (SmolLM2-135M's FFN width): 864 tiles."""
    w = weight_like((576, 1536), seed=12)
    for fmt in FORMATS:
        assert_bit_exact(w, fmt)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    words=st.lists(st.integers(0, 2**32 - 1), min_size=16 * 4, max_size=16 * 4),
    fmt=st.sampled_from(sorted(FORMATS)),
)
def test_any_bit_pattern_bit_exact(words: list[int], fmt: str) -> None:
    """Arbitrary float32 bit patterns (every nan, subnormal and exponent mix)."""
    x = torch.tensor(words, dtype=torch.int64).to(torch.int32).view(torch.float32)
    assert_bit_exact(x.reshape(4, 16), fmt)


def test_reference_error_is_what_the_formats_give() -> None:
    """Sanity check that the comparison is not vacuous: the formats do lose precision."""
    x = random_normal((256, 512), seed=20)
    for fmt, bound in (("bfloat8_b", 2e-2), ("bfloat4_b", 2e-1)):
        _, values = _ttnn_bytes_and_values(x, fmt)
        rel = ((values - x).norm() / x.norm()).item()
        assert 0 < rel < bound and math.isfinite(rel)
