"""Which instruction-set variant of each native kernel runs here: one table, one rule.

A variant is the kernels' C source compiled with one set of ``-m`` flags; the source picks
its code paths with ``#if defined(TTTV2_AVX512F)`` / ``TTTV2_AVX512BF16``, which ``dtypes.h``
sets from the compiler's ``__AVX512F__`` / ``__AVX512BF16__`` (or, in the emulated builds of
:mod:`tttv2.hw.kernels.native.emulate`, from ``TTTV2_SIMDE_ISA``), so the variants differ
only where a kernel has code for a wider ISA. :data:`VARIANTS` lists them, best
first, each with the ISA names (:data:`tttv2.hw.device.cpu.ISA_FLAGS`, the same names the
device profiles use) it needs, the ``/proc/cpuinfo`` flags those names stand for, and the
compiler flags:

* ``avx512_bf16``: ISA AVX-512-BF16, AVX-512, AVX2 (cpuinfo: avx512_bf16 avx512f avx512bw
  avx512vl avx2 fma f16c); ``-mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512bf16``
* ``avx512f``: ISA AVX-512, AVX2 (cpuinfo: avx512f avx512bw avx512vl avx2 fma f16c);
  ``-mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl``
* ``avx2``: ISA AVX2 (cpuinfo: avx2 fma f16c); ``-mavx2 -mfma -mf16c`` (the original build)
* ``portable``: nothing; not compiled, PyTorch's kernels run (any CPU, ARM included)

:func:`select_variant` gives a kernel the first variant of those it has code for
(:data:`KERNEL_VARIANTS`) that the CPU's flags, the machine (x86-64) and the device
profile's ISA list all allow, and says why the better ones were passed over. Forcing a
profile (``TTTV2_DEVICE_PROFILE=cpu:avx2``) therefore pins the variant on any host that can
run it; the CPU's flags still cap it, so no profile makes a host load code it cannot run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tttv2.hw.device.cpu import ISA_FLAGS

#: x86 machine names (``platform.machine()``) the native variants are built for.
X86_MACHINES = ("x86_64", "amd64")
_BASE_CFLAGS = ("-mavx2", "-mfma", "-mf16c")


@dataclass(frozen=True)
class IsaVariant:
    """One way to build the native kernels, and what a host needs to run it."""

    name: str
    #: ISA names (:data:`~tttv2.hw.device.cpu.ISA_FLAGS`) the CPU and the profile must have.
    isa: tuple[str, ...]
    #: Compiler flags selecting the instruction set (empty: nothing is compiled).
    cflags: tuple[str, ...]
    #: cpuinfo flags needed beyond those the ISA names stand for.
    extra_cpu_flags: frozenset[str] = field(default_factory=frozenset)

    @property
    def native(self) -> bool:
        """Whether this variant is compiled C (else PyTorch's kernels run)."""
        return bool(self.cflags)

    @property
    def cpu_flags(self) -> frozenset[str]:
        """Every ``/proc/cpuinfo`` flag the CPU must report to run this variant."""
        flags = set(self.extra_cpu_flags)
        for isa in self.isa:
            flags.update(ISA_FLAGS[isa])
        return frozenset(flags)


#: The variants, best first (the last, ``portable``, runs anywhere).
VARIANTS: tuple[IsaVariant, ...] = (
    IsaVariant(
        "avx512_bf16",
        ("AVX-512-BF16", "AVX-512", "AVX2"),
        (*_BASE_CFLAGS, "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512bf16"),
        frozenset({"f16c"}),
    ),
    IsaVariant(
        "avx512f",
        ("AVX-512", "AVX2"),
        (*_BASE_CFLAGS, "-mavx512f", "-mavx512bw", "-mavx512vl"),
        frozenset({"f16c"}),
    ),
    IsaVariant("avx2", ("AVX2",), _BASE_CFLAGS, frozenset({"f16c"})),
    IsaVariant("portable", (), ()),
)
VARIANT_NAMES = tuple(v.name for v in VARIANTS)
#: The variant the kernels were first written for (all of them have it).
BASELINE = "avx2"
PORTABLE = "portable"

_ALL = VARIANT_NAMES
_AVX2_ONLY = (BASELINE, PORTABLE)
#: Per kernel (``native/<name>.c``), the variants its source has code for. A kernel whose
#: source has no wider path is not rebuilt for a wider ISA: the AVX2 build is the same code.
KERNEL_VARIANTS: dict[str, tuple[str, ...]] = {
    "skinny_linear": _ALL,  # 16-wide loads; bf16 x bf16 by vdpbf16ps
    "rms_norm": _AVX2_ONLY,
    "paged_decode_attention": _AVX2_ONLY,
    "decode_layer": _ALL,  # its products are skinny_linear.c's
    "routed_experts": _ALL,  # likewise
}


@dataclass(frozen=True)
class IsaChoice:
    """The variant one kernel gets on one host, and why."""

    kernel: str
    variant: IsaVariant
    reason: str
    #: (variant, why not) for each better variant of this kernel that was passed over.
    passed_over: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "variant": self.variant.name,
            "reason": self.reason,
            "passed_over": dict(self.passed_over),
        }


def variant(name: str) -> IsaVariant:
    """The variant called ``name``; ValueError names the known ones otherwise."""
    for v in VARIANTS:
        if v.name == name:
            return v
    raise ValueError(f"unknown ISA variant {name!r} (known: {', '.join(VARIANT_NAMES)})")


def why_not(
    v: IsaVariant,
    cpu_flags: frozenset[str],
    machine: str,
    profile: str,
    profile_isa: tuple[str, ...],
) -> str:
    """Why ``v`` cannot run here, or ``""`` when it can."""
    if not v.native:
        return ""
    if machine.lower() not in X86_MACHINES:
        return f"x86-64 only (this machine: {machine})"
    reasons = []
    missing = sorted(v.cpu_flags - cpu_flags)
    if missing:
        reasons.append(f"CPU lacks {', '.join(missing)}")
    unlisted = [isa for isa in v.isa if isa not in profile_isa]
    if unlisted:
        reasons.append(f"device profile {profile} lacks {', '.join(unlisted)}")
    return "; ".join(reasons)


def select_variant(
    kernel: str,
    *,
    cpu_flags: frozenset[str],
    machine: str,
    profile: str,
    profile_isa: tuple[str, ...],
    disabled_by: str = "",
) -> IsaChoice:
    """The best variant of ``kernel`` this CPU, machine and device profile allow.

    ``disabled_by`` (e.g. ``"TTTV2_NATIVE_KERNELS=0"``) forces the portable variant."""
    names = KERNEL_VARIANTS.get(kernel, _AVX2_ONLY)
    if disabled_by:
        return IsaChoice(kernel, variant(PORTABLE), f"native kernels turned off by {disabled_by}")
    passed: list[tuple[str, str]] = []
    for name in names:
        v = variant(name)
        reason = why_not(v, cpu_flags, machine, profile, profile_isa)
        if reason:
            passed.append((name, reason))
            continue
        if not v.native:
            why = "no native variant runs here" if passed else "the only variant"
            return IsaChoice(kernel, v, f"PyTorch's kernels: {why}", tuple(passed))
        better = [n for n in VARIANT_NAMES[: VARIANT_NAMES.index(name)] if n not in names]
        why = (
            f"CPU has {', '.join(sorted(v.cpu_flags))}; profile {profile} lists {', '.join(v.isa)}"
        )
        if better:
            why += f"; {kernel} has no {'/'.join(better)} code"
        return IsaChoice(kernel, v, why, tuple(passed))
    raise AssertionError(f"{kernel}: no portable variant")  # every kernel lists portable
