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
from tttv2.hw.precision.policy import (
    PRESETS,
    WEIGHT_FORMATS,
    WEIGHT_ROLES,
    PrecisionPolicy,
    PrecisionPolicyError,
    dequantize_int8,
    format_bytes,
    get_precision_policy,
    int8_round_trip,
    quantize_int8,
    round_trip_weight,
)
from tttv2.hw.precision.weight_bytes import policy_weight_bytes

__all__ = [
    "PRESETS",
    "WEIGHT_FORMATS",
    "WEIGHT_ROLES",
    "PrecisionPolicy",
    "PrecisionPolicyError",
    "dequantize_int8",
    "format_bytes",
    "get_precision_policy",
    "int8_round_trip",
    "policy_weight_bytes",
    "quantize_int8",
    "round_trip_weight",
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
