"""Tenstorrent block-float formats ``bfloat8_b`` and ``bfloat4_b``, in torch.

What ttnn's host packer does (tt-metal ``tt_metal/impl/data_format/blockfloat_common.cpp``
``convert_u32_to_bfp`` / ``pack_as_bfp_tiles`` and ``bfp_simd.hpp``; unpacking as in
``bfloat8.cpp`` / ``bfloat4.cpp`` ``unpack_bfp*_tiles_into_float_vec``), checked bit for bit
against ``ttnn==0.81.1`` by ``packages/tttv2-hw/tests_ttnn``:

* A tensor's last two dimensions are padded with zeros to multiples of 32 and cut into
  32x32 tiles (row-major tile order, each leading index on its own). A tile is four 16x16
  faces (top-left, top-right, bottom-left, bottom-right), each stored row-major.
* Every face row of 16 values shares one exponent: the largest raw float32 exponent field
  among them (so an inf/nan, exponent 255, sets it to 255).
* Each value becomes sign + an ``m``-bit magnitude (m = 7 for bfloat8_b, 3 for bfloat4_b):
  its 24-bit significand (hidden bit included) shifted right by ``shared - own exponent``
  (32 or more: 0), then rounded to m bits, ties to even, saturating at ``2**m - 1`` (no
  carry into the exponent). Values whose exponent field is 0 (zeros, float32 subnormals) flush
  to 0, and a magnitude of 0 drops the sign (no negative zero).
* Stored bytes per tile: 64 exponent bytes (face 0 rows 0..15, then faces 1, 2, 3), then the
  codes in the same face order, one byte each (bfloat8_b: 1088 bytes per tile) or two per
  byte, the earlier value in the low nibble (bfloat4_b: 576 bytes per tile).
* Unpacking renormalises the magnitude into a float32 with exponent ``shared - shift``; a
  value whose exponent would drop below 0 is flushed to +0; ``shared`` 255 gives inf, or nan
  when magnitude bits remain below the leading one.

Every unpacked value is exactly representable in bfloat16.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tttv2.core.errors import UnknownNameError

TILE = 32
FACE = 16
#: Exponent bytes per tile: one per face row (4 faces x 16 rows).
EXPONENT_BYTES_PER_TILE = (TILE // FACE) ** 2 * FACE

#: Format name -> mantissa bits (magnitude bits after the sign; the leading one is explicit).
MANTISSA_BITS: dict[str, int] = {"bfloat8_b": 7, "bfloat4_b": 3}


def _bits(fmt: str) -> int:
    try:
        return MANTISSA_BITS[fmt]
    except KeyError:
        raise UnknownNameError("block-float format", fmt, MANTISSA_BITS) from None


def tile_bytes(fmt: str) -> int:
    """Bytes one 32x32 tile takes in ``fmt``: 1088 (bfloat8_b) or 576 (bfloat4_b)."""
    code_bits = _bits(fmt) + 1
    return EXPONENT_BYTES_PER_TILE + TILE * TILE * code_bits // 8


def packed_bytes(shape: tuple[int, ...] | torch.Size, fmt: str) -> int:
    """Bytes a tensor of ``shape`` takes in ``fmt`` on the device, tile padding included."""
    shape = tuple(shape)
    if len(shape) == 0:
        shape = (1, 1)
    elif len(shape) == 1:
        shape = (1, *shape)
    *lead, h, w = shape
    batch = 1
    for d in lead:
        batch *= d
    tiles = batch * (-(-h // TILE)) * (-(-w // TILE))
    return tiles * tile_bytes(fmt)


def _encode_rows(rows: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """rows: (..., 16) float32. Returns (shared exponent (...,) int32, codes (..., 16) int32)."""
    words = rows.contiguous().view(torch.int32)
    sign = (words < 0).to(torch.int32)
    magnitude = words & 0x7FFFFFFF
    exponent = magnitude >> 23
    shared = exponent.amax(dim=-1)
    diff = shared.unsqueeze(-1) - exponent
    significand = (magnitude & 0x7FFFFF) | 0x800000
    significand = torch.where(diff >= 32, 0, significand >> diff.clamp(max=31))
    shift = 24 - bits
    lsb = (significand >> shift) & 1
    rounded = (significand + ((1 << (shift - 1)) - 1) + lsb) >> shift
    rounded = rounded.clamp(max=(1 << bits) - 1)
    rounded = torch.where(exponent == 0, 0, rounded)
    codes = torch.where(rounded != 0, rounded | (sign << bits), 0)
    return shared, codes


def _decode_rows(shared: torch.Tensor, codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Inverse of :func:`_encode_rows`: float32 values (..., 16)."""
    codes = codes.to(torch.int32)
    limit = (1 << bits) - 1
    sign = (codes >> bits) & 1
    man = codes & limit
    # shift: how far the leading one sits below bit (bits - 1).
    lead = torch.zeros_like(man)
    for b in range(1, bits):
        lead = torch.where(man >= (1 << b), b, lead)
    shift_cnt = (bits - 1) - lead
    normalised = (man << (shift_cnt + 1)) & limit
    shared = shared.to(torch.int32).unsqueeze(-1).expand_as(man)
    exp_out = shared - shift_cnt
    word = (exp_out << 23) | (normalised << (23 - bits))
    flushed = (man != 0) & (shift_cnt > shared)
    word = torch.where((man == 0) | flushed, 0, word)
    word = word | (torch.where(flushed, 0, sign) << 31)
    return word.view(torch.float32)


def _as_rows_of_16(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Pad the last dimension with zeros to a multiple of 16 and split it into rows of 16
    (the shared-exponent groups: face rows of a tile never straddle a 16-column boundary)."""
    w = x.shape[-1]
    pad = (-w) % FACE
    if pad:
        x = torch.nn.functional.pad(x, (0, pad))
    return x.reshape(*x.shape[:-1], -1, FACE), w


def block_float_round_trip(x: torch.Tensor, fmt: str, chunk_rows: int = 1 << 16) -> torch.Tensor:
    """``x`` as the device holds it in ``fmt``: packed and unpacked again, same shape, same
    dtype as ``x`` (values are exact in bfloat16 and float32). Works row block by row block
    (``chunk_rows`` rows of the last dimension at a time) to bound temporary memory."""
    bits = _bits(fmt)
    if not x.is_floating_point():
        raise TypeError(f"block-float needs a floating tensor, got {x.dtype}")
    if x.dim() == 0:
        return block_float_round_trip(x.reshape(1), fmt).reshape(())
    flat = x.reshape(-1, x.shape[-1])
    out = torch.empty_like(flat)
    for start in range(0, flat.shape[0], chunk_rows):
        block = flat[start : start + chunk_rows].to(torch.float32)
        rows, w = _as_rows_of_16(block)
        shared, codes = _encode_rows(rows, bits)
        values = _decode_rows(shared, codes, bits).reshape(block.shape[0], -1)[:, :w]
        out[start : start + chunk_rows] = values.to(x.dtype)
    return out.reshape(x.shape)


@dataclass(frozen=True)
class PackedBlockFloat:
    """A tensor in device storage order: ``data`` is (tiles, tile_bytes) uint8, one row per
    tile as ttnn stores it; ``shape`` the logical shape; ``fmt`` the format name."""

    data: torch.Tensor
    shape: tuple[int, ...]
    fmt: str

    @property
    def exponents(self) -> torch.Tensor:
        """(tiles, 64) uint8: each tile's shared exponents, face by face, row by row."""
        return self.data[:, :EXPONENT_BYTES_PER_TILE]

    @property
    def mantissas(self) -> torch.Tensor:
        """(tiles, 1024 or 512) uint8: the sign+magnitude codes as stored."""
        return self.data[:, EXPONENT_BYTES_PER_TILE:]

    def words(self) -> torch.Tensor:
        """The same bytes as little-endian uint32 words (how ttnn's host buffer holds them),
        as int64 so every value is non-negative."""
        return self.data.reshape(-1).view(torch.int32).to(torch.int64) & 0xFFFFFFFF


def _matrix_view(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) == 0:
        return 1, 1, 1
    if len(shape) == 1:
        return 1, 1, shape[0]
    batch = 1
    for d in shape[:-2]:
        batch *= d
    return batch, shape[-2], shape[-1]


def tilize(x: torch.Tensor) -> torch.Tensor:
    """(tiles, 4, 16, 16): ``x`` padded with zeros to tile multiples in its last two
    dimensions, cut into 32x32 tiles in row-major tile order, each tile as its four faces."""
    batch, h, w = _matrix_view(tuple(x.shape))
    m = x.reshape(batch, h, w)
    ph, pw = (-h) % TILE, (-w) % TILE
    if ph or pw:
        m = torch.nn.functional.pad(m, (0, pw, 0, ph))
    th, tw = m.shape[1] // TILE, m.shape[2] // TILE
    t = m.reshape(batch, th, 2, FACE, tw, 2, FACE).permute(0, 1, 4, 2, 5, 3, 6)
    return t.reshape(batch * th * tw, 4, FACE, FACE)


def untilize(tiles: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Inverse of :func:`tilize`: the logical tensor of ``shape`` (padding dropped)."""
    batch, h, w = _matrix_view(shape)
    th, tw = -(-h // TILE), -(-w // TILE)
    t = tiles.reshape(batch, th, tw, 2, 2, FACE, FACE).permute(0, 1, 3, 5, 2, 4, 6)
    m = t.reshape(batch, th * TILE, tw * TILE)[:, :h, :w]
    return m.reshape(shape)


def pack_block_float(x: torch.Tensor, fmt: str) -> PackedBlockFloat:
    """``x`` packed as ttnn stores ``fmt`` in TILE layout (see the module docstring)."""
    bits = _bits(fmt)
    if not x.is_floating_point():
        raise TypeError(f"block-float needs a floating tensor, got {x.dtype}")
    tiles = tilize(x.to(torch.float32))
    n = tiles.shape[0]
    shared, codes = _encode_rows(tiles, bits)  # (n, 4, 16), (n, 4, 16, 16)
    exps = shared.reshape(n, EXPONENT_BYTES_PER_TILE).to(torch.uint8)
    codes = codes.reshape(n, TILE * TILE)
    if bits == 3:
        pairs = codes.reshape(n, -1, 2)
        codes = pairs[..., 0] | (pairs[..., 1] << 4)
    data = torch.cat([exps, codes.to(torch.uint8)], dim=1)
    return PackedBlockFloat(data, tuple(x.shape), fmt)


def unpack_block_float(packed: PackedBlockFloat) -> torch.Tensor:
    """float32 tensor of ``packed.shape`` from device bytes."""
    bits = _bits(packed.fmt)
    n = packed.data.shape[0]
    shared = packed.exponents.to(torch.int32).reshape(n, 4, FACE)
    codes = packed.mantissas.to(torch.int32)
    if bits == 3:
        codes = torch.stack([codes & 0xF, codes >> 4], dim=-1)
    codes = codes.reshape(n, 4, FACE, FACE)
    values = _decode_rows(shared, codes, bits)
    return untilize(values, packed.shape)
