"""How a CPU multiplies many half-precision rows: the variants of the GEMM, and one rule.

Decode's few-row products have native kernels per instruction set
(:mod:`tttv2.hw.kernels.native.isa`). Products of many rows (prefill, batched decode from
:data:`~tttv2.hw.kernels.linear.UPCAST_MIN_ROWS` rows) are GEMMs, and on a CPU a half-precision
(bf16 or fp16) GEMM runs one of these ways, best first (:data:`GEMM_VARIANTS`):

* ``amx``: torch's bf16 GEMM; oneDNN runs it on AMX tiles (Intel Sapphire Rapids and later);
* ``avx512_bf16``: torch's bf16 GEMM; oneDNN's AVX-512-BF16 kernels (``vdpbf16ps``, Zen 4,
  Cooper Lake);
* ``neon_bf16``: torch's bf16 GEMM on Arm's BF16 dot products;
* ``fp32_upcast``: an fp32 GEMM over weight slices converted to fp32 in a cache-resident
  buffer (:func:`~tttv2.hw.kernels.linear.upcast_linear`). Without bf16 dot products,
  torch's bf16 GEMM converts element by element (~9 GFLOP/s where the fp32 GEMM reaches ~40
  on a 2-core AVX2 Zen 4), so this is faster by 2-4x on such CPUs.

The rule (:func:`select_half_gemm`): bf16 takes the first variant whose ISA the device
profile lists (its ISA list is what detection found on this CPU, or what a forced profile
such as ``TTTV2_DEVICE_PROFILE=cpu:avx2`` names: a forced profile selects the same path on
every host, and any host can run every variant, the torch ones slowly). fp16 always takes
``fp32_upcast``: CPUs with fp16 dot products (AVX-512-FP16, AMX-FP16) are not told apart by
the detection, and the fp32 path is always correct. The oneDNN kernels are torch's: this
module chooses torch's GEMM or the fp32 one, it does not pick oneDNN's instructions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch

from tttv2.hw.device.cpu import ISA_FLAGS


@dataclass(frozen=True)
class GemmVariant:
    """One way to run a many-row half-precision product on a CPU."""

    name: str
    #: The ISA name (:data:`~tttv2.hw.device.cpu.ISA_FLAGS`) the profile must list; None: any.
    isa: str | None
    #: True: torch's own half-precision GEMM; False: the fp32 GEMM over converted slices.
    torch_half: bool
    #: What runs, in words (what ``tttv2-hw`` prints).
    how: str


#: The variants, best first; the last runs anywhere.
GEMM_VARIANTS: tuple[GemmVariant, ...] = (
    GemmVariant("amx", "AMX", True, "torch's bf16 GEMM (oneDNN on AMX tiles)"),
    GemmVariant(
        "avx512_bf16", "AVX-512-BF16", True, "torch's bf16 GEMM (oneDNN's AVX-512-BF16 kernels)"
    ),
    GemmVariant("neon_bf16", "NEON-BF16", True, "torch's bf16 GEMM (Arm BF16 dot products)"),
    GemmVariant("fp32_upcast", None, False, "fp32 GEMM over weight slices converted in cache"),
)
GEMM_VARIANT_NAMES = tuple(v.name for v in GEMM_VARIANTS)
#: The half-precision dtypes this choice is made for.
HALF_DTYPES = (torch.bfloat16, torch.float16)


@dataclass(frozen=True)
class GemmChoice:
    """The variant a half-precision dtype's many-row products take here, and why."""

    dtype: torch.dtype
    variant: GemmVariant
    reason: str
    #: (variant, why not) for each better variant that was passed over.
    passed_over: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "variant": self.variant.name,
            "runs": self.variant.how,
            "reason": self.reason,
            "passed_over": dict(self.passed_over),
        }


def gemm_variant(name: str) -> GemmVariant:
    """The variant called ``name``; ValueError names the known ones otherwise."""
    for v in GEMM_VARIANTS:
        if v.name == name:
            return v
    known = ", ".join(GEMM_VARIANT_NAMES)
    raise ValueError(f"unknown half-precision GEMM variant {name!r} (known: {known})")


@cache
def select_half_gemm(
    dtype: torch.dtype, *, profile: str, profile_isa: tuple[str, ...]
) -> GemmChoice:
    """The variant of ``dtype``'s many-row products under a device profile called
    ``profile`` that lists ``profile_isa`` (best first, as :class:`CPUInfo.isa`)."""
    fallback = GEMM_VARIANTS[-1]
    if dtype == torch.float16:
        bf16_only = tuple((v.name, "a bf16 GEMM") for v in GEMM_VARIANTS if v.torch_half)
        why = "fp16 dot products (AVX-512-FP16, AMX-FP16) are not detected: fp32 is always correct"
        return GemmChoice(dtype, fallback, why, bf16_only)
    if dtype != torch.bfloat16:
        raise ValueError(f"half-precision GEMM variants are for bfloat16 and float16, not {dtype}")
    passed: list[tuple[str, str]] = []
    for v in GEMM_VARIANTS:
        if v.isa is None:
            why = "no bf16 dot products in profile " + profile
            return GemmChoice(dtype, v, f"{why}: torch's bf16 GEMM would convert element by element", tuple(passed))  # fmt: skip
        if v.isa in profile_isa:
            return GemmChoice(dtype, v, f"profile {profile} lists {v.isa}", tuple(passed))
        flags = ", ".join(ISA_FLAGS[v.isa])
        passed.append((v.name, f"profile {profile} lacks {v.isa} (cpuinfo: {flags})"))
    raise AssertionError("the last GEMM variant runs anywhere")  # fp32_upcast has no ISA


def half_gemm_choice(dtype: torch.dtype) -> GemmChoice:
    """:func:`select_half_gemm` under the default device's profile
    (:func:`~tttv2.hw.optimal.default_device`: detected, or ``TTTV2_DEVICE_PROFILE``)."""
    from tttv2.hw.optimal import default_device

    device = default_device()
    return select_half_gemm(dtype, profile=device.profile, profile_isa=device.cpu.isa)
