"""Reading and checking a safetensors header without loading any tensor data.

A safetensors file is an 8-byte little-endian header length ``N``, ``N`` bytes of JSON
(``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``),
then the tensor bytes. Checking every entry against the file size up front turns a
truncated download into one clear error instead of a crash halfway through loading.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from tttv2.blocks.weights.dtypes import SAFETENSORS_ITEMSIZE
from tttv2.blocks.weights.errors import CorruptCheckpointError

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the format's own limit


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives and what it looks like."""

    name: str
    file: Path
    dtype: str  # safetensors dtype name, e.g. "BF16"
    shape: tuple[int, ...]
    nbytes: int


def read_header(path: Path) -> dict[str, TensorInfo]:
    """Every tensor described by ``path``'s header, checked against the file's size."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CorruptCheckpointError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if size < 8:
        raise CorruptCheckpointError(f"{path}: truncated or not a safetensors file ({size} bytes)")
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        if header_len > min(size - 8, MAX_HEADER_BYTES):
            raise CorruptCheckpointError(
                f"{path}: truncated or not a safetensors file (header claims {header_len} bytes, "
                f"file holds {size - 8} after the length)"
            )
        raw = f.read(header_len)
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, ints past the digit limit
        raise CorruptCheckpointError(f"{path}: corrupt safetensors header ({exc})") from None
    if not isinstance(header, dict):
        raise CorruptCheckpointError(f"{path}: corrupt safetensors header (not a JSON object)")
    header.pop("__metadata__", None)
    data_size = size - 8 - header_len
    return {name: _entry(path, name, info, data_size) for name, info in header.items()}


def _entry(path: Path, name: str, info: object, data_size: int) -> TensorInfo:
    def bad(why: str) -> CorruptCheckpointError:
        return CorruptCheckpointError(f"{path}: corrupt safetensors header entry {name!r}: {why}")

    if not isinstance(info, dict):
        raise bad("not a JSON object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in SAFETENSORS_ITEMSIZE:
        raise bad(f"unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise bad(f"shape {shape!r} is not a list of non-negative integers")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_int(o) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise bad(f"data_offsets {offsets!r} is not [begin, end]")
    nbytes = math.prod(shape) * SAFETENSORS_ITEMSIZE[dtype]
    if offsets[1] - offsets[0] != nbytes:
        raise bad(
            f"{dtype} {shape} needs {nbytes} bytes, data_offsets span {offsets[1] - offsets[0]}"
        )
    if offsets[1] > data_size:
        raise CorruptCheckpointError(
            f"{path}: truncated: tensor {name!r} ends at byte {offsets[1]} of the data section, "
            f"the file holds {data_size}"
        )
    return TensorInfo(name, path, dtype, tuple(shape), nbytes)


def _is_int(value: object) -> bool:
    """A JSON integer (``true``/``false`` are not sizes)."""
    return isinstance(value, int) and not isinstance(value, bool)
