"""Data types by name: storage size per element and the torch dtype where one exists.

Parameters carry dtypes as strings so they survive JSON/TOML and can name device formats
torch has no dtype for (Tenstorrent block-float ``bfloat8_b`` / ``bfloat4_b``).
"""

from __future__ import annotations

import torch

from tttv2.core.errors import UnknownNameError

#: Bytes per element. Tenstorrent block floats share one exponent byte per 16 values of a
#: 32x32 tile: bfloat8_b = (1024 + 64) / 1024, bfloat4_b = (512 + 64) / 1024 (tt-metal
#: "Data formats" documentation).
DTYPE_BYTES: dict[str, float] = {
    "float32": 4.0,
    "bfloat16": 2.0,
    "float16": 2.0,
    "float8_e4m3fn": 1.0,
    "float8_e5m2": 1.0,
    "int8": 1.0,
    "bfloat8_b": 1.0625,
    "bfloat4_b": 0.5625,
}

_TORCH_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "int8": torch.int8,
}
for _name in ("float8_e4m3fn", "float8_e5m2"):
    if hasattr(torch, _name):
        _TORCH_DTYPES[_name] = getattr(torch, _name)

_ALIASES = {
    "fp32": "float32",
    "bf16": "bfloat16",
    "fp16": "float16",
    "half": "float16",
    "float": "float32",
}


def dtype_name(dtype: str | torch.dtype) -> str:
    """Canonical name of a dtype given as a name, an alias (``"bf16"``) or a torch dtype."""
    if isinstance(dtype, torch.dtype):
        name = str(dtype).removeprefix("torch.")
    elif isinstance(dtype, str):
        name = _ALIASES.get(dtype.lower(), dtype.lower())
    else:
        raise TypeError(f"dtype must be a name or a torch.dtype, got {dtype!r}")
    if name not in DTYPE_BYTES:
        raise UnknownNameError("dtype", dtype, DTYPE_BYTES)
    return name


def dtype_bytes(dtype: str | torch.dtype) -> float:
    """Storage bytes per element."""
    return DTYPE_BYTES[dtype_name(dtype)]


def to_torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """The torch dtype for a name; device-only formats raise naming the torch ones."""
    name = dtype_name(dtype)
    try:
        return _TORCH_DTYPES[name]
    except KeyError:
        raise UnknownNameError("torch dtype", name, _TORCH_DTYPES) from None
