"""Torch dtypes by name, and the element sizes of safetensors dtypes."""

from __future__ import annotations

import torch

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}

# Bytes per element of every dtype the safetensors format defines.
SAFETENSORS_ITEMSIZE: dict[str, int] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4,
    "U64": 8, "I64": 8, "F64": 8,
}  # fmt: skip


def parse_dtype(name: str | torch.dtype) -> torch.dtype:
    """``"float32"`` / ``"fp32"`` / ``"bfloat16"`` / ``"bf16"`` / ... -> ``torch.dtype``."""
    if isinstance(name, torch.dtype):
        return name
    aliases = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}
    key = aliases.get(str(name).lower(), str(name).lower())
    try:
        return DTYPES[key]
    except KeyError:
        raise ValueError(
            f"dtype {name!r} is invalid: expected one of {', '.join(DTYPES)}"
        ) from None
