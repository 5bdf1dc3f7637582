"""Emulated builds: a variant's AVX-512 code paths compiled for, and run on, an AVX2 host.

For tests. An emulated build of variant ``V`` (``avx512f`` or ``avx512_bf16``) is the kernel's
source compiled with the AVX2 flags (:data:`~tttv2.hw.kernels.native.isa.BASELINE`'s) plus
``-DTTTV2_SIMDE_ISA=<level>`` and SIMDe's include directory: ``dtypes.h`` then turns on the
same ``#if`` paths ``-mavx512f`` / ``-mavx512bf16`` turn on, with SIMDe's portable
definitions of the AVX-512 intrinsics (the AVX2 ones stay native). Any AVX2 host runs it.

It checks the code's logic against the reference: indexing, register blocking, the K and N
tails, dtype handling, which bf16 pairs ``vdpbf16ps`` multiplies. It does not measure the
hardware's speed, nor reproduce ``vdpbf16ps``'s exact rounding: SIMDe adds each lane's even
product first and keeps denormals, the hardware (Intel SDM pseudo-code) adds the odd product
first and flushes denormal inputs and results to zero.

SIMDe's headers come from the ``simde-py`` package (the workspace's ``dev`` dependency
group); runtime never needs it. ``TTTV2_NATIVE_EMULATE=<variant>`` makes the normal path
(:func:`~tttv2.hw.kernels.native.build.native_function`) build every kernel that has that
variant as its emulated build, so whole test files run the AVX-512 paths.
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

from tttv2.hw.kernels.native.isa import BASELINE, KERNEL_VARIANTS, IsaVariant, variant

#: Names the variant every kernel having it is built as, emulated (empty, ``0``, ``off``: none).
EMULATE_ENV = "TTTV2_NATIVE_EMULATE"
#: The PyPI package with SIMDe's headers.
SIMDE_PACKAGE = "simde-py"
#: ``TTTV2_SIMDE_ISA`` (dtypes.h) per variant that can be emulated.
EMULATION_LEVELS: dict[str, int] = {"avx512f": 1, "avx512_bf16": 2}
#: Compiler flags every emulated build adds (SIMDe passes 512-bit structs by value).
EMULATION_CFLAGS = ("-Wno-psabi",)


def emulable(name: str) -> bool:
    """Whether variant ``name`` has an emulated build."""
    return name in EMULATION_LEVELS


def requested_variant() -> str | None:
    """The variant :data:`EMULATE_ENV` names, or None when it is unset or off; ValueError
    for a variant that cannot be emulated."""
    value = os.environ.get(EMULATE_ENV, "").strip()
    if value.lower() in ("", "0", "off", "false", "no"):
        return None
    if not emulable(value):
        raise ValueError(
            f"{EMULATE_ENV}={value}: only {', '.join(EMULATION_LEVELS)} can be emulated"
        )
    return value


def emulated_for(kernel: str) -> str | None:
    """The variant kernel ``kernel`` is built as, emulated, under :data:`EMULATE_ENV`: the
    requested one when the kernel has code for it, else None (its normal choice stands)."""
    requested = requested_variant()
    if requested is None or requested not in KERNEL_VARIANTS.get(kernel, ()):
        return None
    return requested


def simde_include() -> Path | None:
    """SIMDe's include directory (``simde-py``), or None when the package is missing."""
    try:
        import simde_py  # type: ignore[import-untyped]  # headers only, no stubs
    except ImportError:
        return None
    return Path(simde_py.get_include())


def simde_version() -> str:
    """The installed ``simde-py`` version (part of the cache key), or ``""``."""
    try:
        return metadata.version(SIMDE_PACKAGE)
    except metadata.PackageNotFoundError:
        return ""


def missing_simde() -> str:
    """Why an emulated build cannot be made without ``simde-py``."""
    return (
        f"emulated builds need SIMDe's headers: install the {SIMDE_PACKAGE} package "
        "(the workspace's dev dependency group has it)"
    )


def emulated_cflags(v: IsaVariant, include: Path) -> tuple[str, ...]:
    """The ``-m`` and other flags (after ``-O3``) of the emulated build of variant ``v``:
    the AVX2 build's, the emulation level, SIMDe's include directory."""
    if not emulable(v.name):
        raise ValueError(
            f"the {v.name} variant has no emulated build (only {', '.join(EMULATION_LEVELS)})"
        )
    level = EMULATION_LEVELS[v.name]
    return (
        *variant(BASELINE).cflags,
        *EMULATION_CFLAGS,
        f"-DTTTV2_SIMDE_ISA={level}",
        f"-I{include}",
    )
