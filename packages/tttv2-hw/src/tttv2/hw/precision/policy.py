"""Precision policies: which number format each weight, the KV cache and the activations
are held in, with the presets Tenstorrent model bring-up uses.

Weights are named by role (what the matmul does), not by model:

* ``wqkv``: the query/key/value projections (fused or not); ``wo``: the attention output;
* ``w1_w3``: the FFN's first projections (gate ``w1`` and up ``w3``, fused or not);
  ``w2``: the FFN's down projection;
* ``lm_head``, ``embedding``; ``other``: any other matmul weight (MoE routers, ...).

Presets (tt-metal ``models/tt_transformers/tt/model_config.py``: ``TensorGroup`` FF1_FF3,
FF2, WQKV, WO, KV_CACHE, ACTIVATION; ``PrecisionSetting`` BFP4 / BFP8 / BF16;
``ModelOptimizations.performance`` sets FF1_FF3 to BFP4 over the bfloat8_b defaults, and
``ModelOptimizations.accuracy`` sets WQKV and KV_CACHE to BF16 for the models it finds
attention-sensitive; the LM head is bfloat8_b and the embedding bf16 in both):

========== ====== ====== ====== ====== ======= ========= ======== ===========
preset     wqkv   wo     w1_w3  w2     lm_head embedding kv cache activations
========== ====== ====== ====== ====== ======= ========= ======== ===========
bf16       bf16   bf16   bf16   bf16   bf16    bf16      bf16     bf16
accuracy   bf16   bfp8   bfp8   bfp8   bfp8    bf16      bf16     bf16
performance bfp8  bfp8   bfp4   bfp8   bfp8    bf16      bfp8     bf16
int8       int8   int8   int8   int8   int8    bf16      bf16     bf16
========== ====== ====== ====== ====== ======= ========= ======== ===========

(bfp8 = ``bfloat8_b``, bfp4 = ``bfloat4_b``; ``int8`` is weight-only, symmetric per output
channel, for CPUs: :func:`quantize_int8` gives the codes and scales that tttv2-blocks stores
and the native int8 decode kernels read, :func:`int8_round_trip` their values.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import torch

from tttv2.core.errors import UnknownNameError
from tttv2.hw.dtypes import dtype_name
from tttv2.hw.precision.block_float import MANTISSA_BITS, block_float_round_trip, packed_bytes

WEIGHT_ROLES = ("wqkv", "wo", "w1_w3", "w2", "lm_head", "embedding", "other")
WEIGHT_FORMATS = ("bfloat16", "float32", "bfloat8_b", "bfloat4_b", "int8")
KV_FORMATS = ("bfloat16", "float32", "bfloat8_b")
ACTIVATION_DTYPES = ("bfloat16", "float32")
MODES = ("prefill", "decode")


class PrecisionPolicyError(ValueError):
    """A policy names an unknown role, mode or format."""


def _check(what: str, value: str, valid: tuple[str, ...]) -> str:
    try:
        name = value if value in MANTISSA_BITS else dtype_name(value)
    except (UnknownNameError, TypeError):
        name = None
    if name not in valid:
        raise PrecisionPolicyError(f"{what}={value!r} is not one of {', '.join(valid)}")
    return name


@dataclass(frozen=True)
class PrecisionPolicy:
    """``weights``: role -> format (roles missing take ``weights['other']``);
    ``kv_cache``: the KV cache's storage format; ``activations``: mode -> dtype of the
    activations between ops."""

    name: str
    weights: Mapping[str, str]
    kv_cache: str = "bfloat16"
    activations: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({m: "bfloat16" for m in MODES})
    )

    def __post_init__(self) -> None:
        weights = {}
        for role, fmt in self.weights.items():
            if role not in WEIGHT_ROLES:
                raise PrecisionPolicyError(
                    f"weight role {role!r} is not one of {', '.join(WEIGHT_ROLES)}"
                )
            weights[role] = _check(f"weights[{role!r}]", fmt, WEIGHT_FORMATS)
        weights.setdefault("other", "bfloat16")
        for role in WEIGHT_ROLES:
            weights.setdefault(role, weights["other"])
        acts = {}
        for mode, dt in dict(self.activations).items():
            if mode not in MODES:
                raise PrecisionPolicyError(
                    f"activation mode {mode!r} is not one of {', '.join(MODES)}"
                )
            acts[mode] = _check(f"activations[{mode!r}]", dt, ACTIVATION_DTYPES)
        for mode in MODES:
            acts.setdefault(mode, "bfloat16")
        object.__setattr__(self, "weights", MappingProxyType(weights))
        object.__setattr__(self, "activations", MappingProxyType(acts))
        object.__setattr__(self, "kv_cache", _check("kv_cache", self.kv_cache, KV_FORMATS))

    def weight_format(self, role: str) -> str:
        if role not in WEIGHT_ROLES:
            raise PrecisionPolicyError(
                f"weight role {role!r} is not one of {', '.join(WEIGHT_ROLES)}"
            )
        return self.weights[role]

    def with_weights(self, **formats: str) -> PrecisionPolicy:
        """A copy with some roles' formats changed (``policy.with_weights(w2="bfloat4_b")``)."""
        return replace(self, name=f"{self.name}+custom", weights={**self.weights, **formats})

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "weights": dict(self.weights),
            "kv_cache": self.kv_cache,
            "activations": dict(self.activations),
        }


_BF16 = {role: "bfloat16" for role in WEIGHT_ROLES}
PRESETS: dict[str, PrecisionPolicy] = {
    "bf16": PrecisionPolicy("bf16", _BF16),
    "accuracy": PrecisionPolicy(
        "accuracy",
        {
            **_BF16,
            "wo": "bfloat8_b",
            "w1_w3": "bfloat8_b",
            "w2": "bfloat8_b",
            "lm_head": "bfloat8_b",
        },
        kv_cache="bfloat16",
    ),
    "performance": PrecisionPolicy(
        "performance",
        {
            **_BF16,
            "wqkv": "bfloat8_b",
            "wo": "bfloat8_b",
            "w1_w3": "bfloat4_b",
            "w2": "bfloat8_b",
            "lm_head": "bfloat8_b",
        },
        kv_cache="bfloat8_b",
    ),
    "int8": PrecisionPolicy(
        "int8",
        {**_BF16, **{r: "int8" for r in ("wqkv", "wo", "w1_w3", "w2", "lm_head", "other")}},
    ),
}


def get_precision_policy(name: str | PrecisionPolicy) -> PrecisionPolicy:
    """A preset by name (``bf16``, ``accuracy``, ``performance``, ``int8``), or the policy."""
    if isinstance(name, PrecisionPolicy):
        return name
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownNameError("precision preset", name, PRESETS) from None


def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``w`` [out, in] as int8 codes, symmetric per output channel (row): ``(q, scale)``
    with ``q = round(w / s)`` in [-127, 127] (int8, ``w``'s shape) and ``s = max|row| / 127``
    (float32, one per row; a zero row has scale 0 and codes 0). ``q * scale[:, None]`` is
    :func:`int8_round_trip`'s value before rounding to ``w``'s dtype."""
    w32 = w.detach().to(torch.float32)
    scale = w32.abs().amax(dim=-1, keepdim=True) / 127.0
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(w32 / safe).clamp(-127, 127).to(torch.int8)
    return q, scale.squeeze(-1)


def dequantize_int8(
    q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``q [out, in]`` int8 times ``scale [out]``, computed in float32 and rounded to ``dtype``."""
    return (q.to(torch.float32) * scale.to(torch.float32).unsqueeze(-1)).to(dtype)


def int8_round_trip(w: torch.Tensor) -> torch.Tensor:
    """``w`` [out, in] quantised to int8, symmetric per output channel (row), and back:
    ``round(w / s) * s`` with ``s = max|row| / 127`` (a zero row stays zero)."""
    q, scale = quantize_int8(w)
    return dequantize_int8(q, scale, w.dtype)


def round_trip_weight(w: torch.Tensor, fmt: str, *, matmul: bool = True) -> torch.Tensor:
    """``w`` as it holds in ``fmt``: same shape and dtype, values the format gives.

    ``matmul``: ``w`` is a linear weight stored ``[out, in]`` (torch / Hugging Face layout);
    Tenstorrent keeps matmul weights transposed (``[in, out]``, tt_transformers transposes
    them before ``ttnn.as_tensor``), so the shared exponents run along the output dimension
    and the round trip is done on ``w.T``. ``int8`` is per output channel either way."""
    fmt = _check("format", fmt, WEIGHT_FORMATS)
    if fmt in MANTISSA_BITS:
        if matmul and w.dim() == 2:
            return block_float_round_trip(w.t(), fmt).t().contiguous()
        return block_float_round_trip(w, fmt)
    if fmt == "int8":
        return int8_round_trip(w)
    return w.to(torch.float32 if fmt == "float32" else torch.bfloat16).to(w.dtype)


def format_bytes(shape: tuple[int, ...], fmt: str, *, matmul: bool = True) -> int:
    """Bytes a weight of ``shape`` takes in ``fmt``: block floats as packed tiles
    (1088 / 576 bytes per 32x32 tile, tile padding included, transposed for matmuls), int8
    one byte per value plus one float32 scale per output channel, others dense."""
    fmt = _check("format", fmt, WEIGHT_FORMATS)
    numel = 1
    for d in shape:
        numel *= d
    if fmt in MANTISSA_BITS:
        if matmul and len(shape) == 2:
            shape = (shape[1], shape[0])
        return packed_bytes(shape, fmt)
    if fmt == "int8":
        return numel + (shape[0] if shape else 1) * 4
    return numel * (4 if fmt == "float32" else 2)
