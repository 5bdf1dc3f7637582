"""Number formats and precision policies: Tenstorrent block floats, int8 weight-only, and
which format each tensor of a model is held in."""

from tttv2.hw.precision.block_float import (
    MANTISSA_BITS,
    PackedBlockFloat,
    block_float_round_trip,
    pack_block_float,
    packed_bytes,
    tile_bytes,
    tilize,
    unpack_block_float,
    untilize,
)

__all__ = [
    "MANTISSA_BITS",
    "PackedBlockFloat",
    "block_float_round_trip",
    "pack_block_float",
    "packed_bytes",
    "tile_bytes",
    "tilize",
    "unpack_block_float",
    "untilize",
]
