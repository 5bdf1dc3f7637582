"""Compile a kernel's C source on first use, cache the shared library, load it with ctypes.

No package index holds prebuilt wheels here and the kernels are a few hundred lines, so
they ship as C source and are built by the system C compiler (``$CC``, else ``cc``/``gcc``)
the first time a process needs them: about a second, once per source, compiler and flags.
The library is cached under ``$TTTV2_CACHE_DIR/native`` by a hash of all three, written to a
temporary name and renamed into place, so parallel processes (pytest-xdist workers) never
load a half-written file. ``TTTV2_NATIVE_KERNELS=0`` turns native kernels off.

Each kernel is built in the instruction-set variant :mod:`tttv2.hw.kernels.native.isa`
selects for it (``avx512_bf16``, ``avx512f``, ``avx2`` or ``portable``: PyTorch's kernels)
from the CPU's flags and the device profile (``TTTV2_DEVICE_PROFILE``); the variant's
compiler flags are part of the cache key. A profile whose ISA list lacks AVX2
(``cpu:generic``, the non-x86 fallback) turns native kernels off even on a host that could
run them, and ``cpu:avx2`` pins the AVX2 build on any x86 host, so a profile's kernel
selection is the same on every host that can run it.

For tests, a variant's AVX-512 code paths also build *emulated* (:mod:`.emulate`: SIMDe's
portable intrinsics on the AVX2 instructions, so any AVX2 host runs them): ``emulate=True``
with a named ``isa``, or ``TTTV2_NATIVE_EMULATE=<variant>`` for every kernel that has that
variant. Such a build is cached apart (``<kernel>-<variant>-emulated-<hash>.so``) and says
so (:attr:`NativeBuild.emulated`, :func:`native_status`).

Anything that stops a build (no compiler, a CPU without the ISA, a compile error) raises
:class:`NativeKernelUnavailable` with the reason; callers fall back to PyTorch's kernels.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch  # noqa: F401  loads the OpenMP runtime (libgomp) the kernels link to and share

from tttv2.hw.cache import cache_dir
from tttv2.hw.kernels.native.emulate import (
    EMULATE_ENV,
    emulable,
    emulated_cflags,
    emulated_for,
    missing_simde,
    simde_include,
    simde_version,
)
from tttv2.hw.kernels.native.isa import (
    BASELINE,
    PORTABLE,
    IsaChoice,
    IsaVariant,
    select_variant,
    variant,
)

if TYPE_CHECKING:
    from _ctypes import CFuncPtr

    from tttv2.hw.device.config import DeviceConfig

log = logging.getLogger(__name__)

DISABLE_ENV = "TTTV2_NATIVE_KERNELS"
#: /proc/cpuinfo flags the least native variant (``avx2``) needs: without them, no kernel.
REQUIRED_CPU_FLAGS = variant(BASELINE).cpu_flags
#: The ISA (tttv2.hw.device.cpu names) a device profile must list for any native kernel.
REQUIRED_ISA = "AVX2"
#: Compiler flags of every variant; the variant adds its ``-m`` flags (:data:`CFLAGS`: avx2's).
COMMON_CFLAGS = ("-O3", "-fopenmp", "-fPIC", "-shared", "-std=c11", "-Wall")
CFLAGS = (COMMON_CFLAGS[0], *variant(BASELINE).cflags, *COMMON_CFLAGS[1:])


class NativeKernelUnavailable(RuntimeError):
    """A native kernel cannot be built or loaded here; the message says why."""


@dataclass(frozen=True)
class NativeBuild:
    """A loaded kernel library and what it cost to get it (warm-up, reported apart)."""

    name: str
    path: Path
    library: ctypes.CDLL
    compiled: bool  # False: loaded from the cache
    seconds: float
    variant: str = BASELINE  # the ISA variant (tttv2.hw.kernels.native.isa) it was built as
    reason: str = ""  # why that variant
    emulated: bool = False  # the variant's code paths by SIMDe on AVX2 (tests: logic, not speed)


#: The kernels of this package (``native/<name>.c``).
NATIVE_KERNELS = (
    "skinny_linear",
    "rms_norm",
    "paged_decode_attention",
    "decode_layer",
    "routed_experts",
)


def native_status(device: DeviceConfig | None = None) -> dict[str, dict[str, object]]:
    """Per kernel: built or loaded from the cache, in how many seconds, or why not (what
    ``tttv2-hw`` reports; building here is the warm-up a first decode would pay), and the
    ISA variant it runs as (``portable``: PyTorch's kernels), whether it is emulated (and why),
    why, and why not the better ones, under ``device``'s profile (default:
    :func:`~tttv2.hw.optimal.default_device`)."""
    status: dict[str, dict[str, object]] = {}
    for name in NATIVE_KERNELS:
        choice = choose_variant(name, device=device)
        passed = dict(choice.passed_over)
        try:
            build = build_native(name, device=device)
        except NativeKernelUnavailable as reason:
            why = str(reason).splitlines()[0]
            if choice.variant.native and not _emulation_asked(name):  # else that build failed
                passed[choice.variant.name] = why
            status[name] = {"available": False, "reason": str(reason), "variant": PORTABLE,
                            "variant_reason": f"PyTorch's kernels: {why}", "passed_over": passed}  # fmt: skip
        else:
            status[name] = {"available": True, "compiled": build.compiled, "seconds": round(build.seconds, 3),
                            "path": str(build.path), "variant": build.variant, "emulated": build.emulated,
                            "variant_reason": build.reason, "passed_over": passed}  # fmt: skip
    return status


def native_disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() in ("0", "off", "false", "no")


def check_cpu(flags: frozenset[str], machine: str) -> None:
    """Raise unless the CPU runs the kernels (x86-64 with AVX2, FMA and F16C)."""
    if machine.lower() not in ("x86_64", "amd64"):
        raise NativeKernelUnavailable(f"native kernels are x86-64 only (this machine: {machine})")
    missing = sorted(REQUIRED_CPU_FLAGS - flags)
    if missing:
        raise NativeKernelUnavailable(
            f"CPU lacks {', '.join(missing)} (needed by the native kernels)"
        )


def check_profile(profile: str, isa: tuple[str, ...]) -> None:
    """Raise unless the device profile's ISA list has what the kernels are built for."""
    if REQUIRED_ISA not in isa:
        shown = ", ".join(isa) or "no vector ISA"
        raise NativeKernelUnavailable(
            f"device profile {profile} has {shown}; the native kernels need {REQUIRED_ISA}"
        )


def find_compiler() -> str:
    for candidate in (os.environ.get("CC"), "cc", "gcc"):
        path = shutil.which(candidate) if candidate else None
        if path:
            return path
    raise NativeKernelUnavailable("no C compiler found (set CC, or install gcc)")


def build_native(
    name: str,
    *,
    flags: frozenset[str] | None = None,
    out_dir: Path | None = None,
    isa: str | None = None,
    device: DeviceConfig | None = None,
    emulate: bool = False,
) -> NativeBuild:
    """Compile (or load from the cache) the kernel ``native/<name>.c`` of this package, in
    the ISA variant selected for it here (:func:`choose_variant`) or the one named by
    ``isa`` (refused when the CPU lacks its flags: such a library would not run). The
    device profile is ``device``'s, by default :func:`~tttv2.hw.optimal.default_device`'s.

    ``emulate=True`` (with ``isa`` ``avx512f`` or ``avx512_bf16``) builds that variant's code
    paths emulated (:mod:`tttv2.hw.kernels.native.emulate`), which any AVX2 host runs. With
    no ``isa``, ``TTTV2_NATIVE_EMULATE=<variant>`` does so for a kernel that has that variant."""
    if emulate and isa is None:
        raise ValueError("emulate=True needs the variant to emulate (isa=)")
    started = time.perf_counter()
    if native_disabled():
        raise NativeKernelUnavailable(f"turned off by {DISABLE_ENV}={os.environ[DISABLE_ENV]}")
    if flags is None:
        flags = _cpu_flags()
    check_cpu(flags, platform.machine())
    _check_device_profile(device)
    choice, emulate = _choose(name, flags, isa, device, emulate)
    if not choice.variant.native:
        raise NativeKernelUnavailable(f"{name}: {choice.reason}")
    target, compiled = compile_native(name, choice.variant.name, out_dir=out_dir, emulate=emulate)
    try:
        library = ctypes.CDLL(str(target))
    except OSError as error:
        raise NativeKernelUnavailable(f"cannot load {target}: {error}") from error
    seconds = time.perf_counter() - started
    return NativeBuild(
        name, target, library, compiled, seconds, choice.variant.name, choice.reason, emulate
    )


def compile_native(
    name: str, isa: str = BASELINE, *, out_dir: Path | None = None, emulate: bool = False
) -> tuple[Path, bool]:
    """The shared library of kernel ``name`` built as variant ``isa``, compiled unless the
    cache has it, and whether it was compiled now. Nothing is loaded, and the host's CPU is
    not consulted: any variant compiles on any x86-64 host with a C compiler.

    ``emulate=True``: the variant's code paths emulated (``avx512f`` and ``avx512_bf16``
    only; needs the ``simde-py`` package), cached as ``<name>-<isa>-emulated-<hash>.so``."""
    chosen = variant(isa)
    if not chosen.native:
        raise NativeKernelUnavailable(f"the {isa} variant is PyTorch's kernels: nothing to compile")
    if emulate and not emulable(isa):
        raise NativeKernelUnavailable(f"the {isa} variant has no emulated build")
    package = resources.files(__package__)
    # a kernel may include headers and other kernels' sources: all of them are its source
    sources = {f.name: f.read_bytes() for f in package.iterdir() if f.name.endswith((".c", ".h"))}
    if f"{name}.c" not in sources:
        raise NativeKernelUnavailable(
            f"no native kernel named {name!r} (have {', '.join(NATIVE_KERNELS)})"
        )
    compiler = find_compiler()
    version = _compiler_version(compiler)
    cflags = variant_cflags(chosen, emulate=emulate)
    parts = [
        name.encode(),
        *(sources[f] for f in sorted(sources)),
        " ".join(cflags).encode(),
        compiler.encode(),
        version,
    ]
    if emulate:  # SIMDe's headers are part of the source
        parts.append(simde_version().encode())
    key = hashlib.sha256(b"\0".join(parts)).hexdigest()
    out_dir = out_dir or cache_dir() / "native"
    suffix = "" if chosen.name == BASELINE else f"-{chosen.name}"
    suffix += "-emulated" if emulate else ""
    target = out_dir / f"{name}{suffix}-{key[:16]}.so"
    compiled = not target.is_file()
    if compiled:
        shown = f"{isa}, emulated" if emulate else isa
        log.info("compiling native kernel %s (%s) into %s (first use)", name, shown, target)
        _compile(compiler, sources, target, name, cflags)
    return target, compiled


def variant_cflags(v: IsaVariant, *, emulate: bool = False) -> tuple[str, ...]:
    """The full compiler command-line flags of variant ``v`` (``-O3``, its ``-m`` flags, ...);
    ``emulate``: of its emulated build (the AVX2 flags, SIMDe's include directory, ...)."""
    if not emulate:
        return (COMMON_CFLAGS[0], *v.cflags, *COMMON_CFLAGS[1:])
    include = simde_include()
    if include is None:
        raise NativeKernelUnavailable(missing_simde())
    return (COMMON_CFLAGS[0], *emulated_cflags(v, include), *COMMON_CFLAGS[1:])


def choose_variant(
    name: str, *, flags: frozenset[str] | None = None, device: DeviceConfig | None = None
) -> IsaChoice:
    """The ISA variant kernel ``name`` gets here: this CPU's flags (or ``flags``), this
    machine and the device profile (``device``'s, by default the default device's), by
    :func:`~tttv2.hw.kernels.native.isa.select_variant`."""
    device = device or _default_device()
    disabled = f"{DISABLE_ENV}={os.environ[DISABLE_ENV]}" if native_disabled() else ""
    return select_variant(
        name,
        cpu_flags=_cpu_flags() if flags is None else flags,
        machine=platform.machine(),
        profile=device.profile,
        profile_isa=device.cpu.isa,
        disabled_by=disabled,
    )


def _compile(
    compiler: str,
    sources: dict[str, bytes],
    target: Path,
    name: str,
    cflags: tuple[str, ...] = CFLAGS,
) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src, out = Path(tmp) / f"{name}.c", Path(tmp) / f"{name}.so"
        for file, text in sources.items():
            (Path(tmp) / file).write_bytes(text)
        result = subprocess.run(
            [compiler, *cflags, str(src), "-o", str(out)], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise NativeKernelUnavailable(
                f"{compiler} failed on {name}.c:\n{result.stderr.strip()}"
            )
        os.replace(out, target)  # atomic: a concurrent process sees no file or a whole one


@cache
def native_function(
    name: str, symbol: str, argtypes: tuple[Any, ...]
) -> CFuncPtr | NativeKernelUnavailable:
    """One C function (returning int) of kernel ``name``, built on the first call of the
    process (see :func:`build_native`), or the reason it cannot be: callers test for
    :class:`NativeKernelUnavailable` and use PyTorch instead. When ``TTTV2_NATIVE_EMULATE``
    asked for this kernel emulated and that build cannot be made, a :class:`RuntimeWarning`
    says so: a run meant to check the emulated code must not pass quietly on PyTorch's."""
    try:
        build = build_native(name)
    except NativeKernelUnavailable as reason:
        if _emulation_asked(name):
            first = str(reason).splitlines()[0]
            warnings.warn(
                f"{EMULATE_ENV}={os.environ.get(EMULATE_ENV, '')}: {name} runs PyTorch's kernels, "
                f"not the emulated build: {first}",
                RuntimeWarning,
                stacklevel=2,
            )
        return reason
    fn = getattr(build.library, symbol)
    fn.argtypes, fn.restype = list(argtypes), ctypes.c_int
    return fn


_T = TypeVar("_T")
#: The kernels' own cached lookups (:func:`native_lookup`), forgotten with native_function's.
_LOOKUPS: list[Callable[[], None]] = []


def native_lookup(lookup: Callable[[], _T]) -> Callable[[], _T]:
    """``functools.cache`` for a kernel module's lookup of its C function (one lookup per
    process, without hashing the argument types on every call), forgotten with the others
    by :func:`forget_native_functions`."""
    cached = cache(lookup)
    _LOOKUPS.append(cached.cache_clear)
    return cached


def forget_native_functions() -> None:
    """Forget every native function looked up in this process (:func:`native_function`'s
    and the kernels' :func:`native_lookup` caches): the next call looks it up, and builds it,
    again under the environment then (``TTTV2_NATIVE_KERNELS``, ``TTTV2_NATIVE_EMULATE``,
    ``TTTV2_DEVICE_PROFILE``). Libraries already loaded stay loaded. For tests."""
    native_function.cache_clear()
    for clear in _LOOKUPS:
        clear()


def _compiler_version(compiler: str) -> bytes:
    try:
        return subprocess.run([compiler, "--version"], capture_output=True, check=False).stdout
    except OSError as error:
        raise NativeKernelUnavailable(f"cannot run {compiler}: {error}") from error


def _choose(
    name: str, flags: frozenset[str], isa: str | None, device: DeviceConfig | None, emulate: bool
) -> tuple[IsaChoice, bool]:
    """build_native's variant and whether it is emulated: the caller's ``isa`` (refused when
    the CPU lacks it, unless emulated), else TTTV2_NATIVE_EMULATE's, else choose_variant's."""
    if isa is None:
        try:
            requested = emulated_for(name)
        except ValueError as error:  # a variant that cannot be emulated: say so, build nothing
            raise NativeKernelUnavailable(str(error)) from error
        if requested is None:
            return choose_variant(name, flags=flags, device=device), False
        why = (
            f"emulated by SIMDe on AVX2 ({EMULATE_ENV}={requested}): tests its code, not its speed"
        )
        return IsaChoice(name, variant(requested), why), True
    chosen = variant(isa)
    if emulate:
        return IsaChoice(name, chosen, "named by the caller, emulated by SIMDe on AVX2"), True
    missing = sorted(chosen.cpu_flags - flags)
    if missing:
        raise NativeKernelUnavailable(
            f"CPU lacks {', '.join(missing)} (needed by the {isa} variant)"
        )
    return IsaChoice(name, chosen, "named by the caller"), False


def _emulation_asked(name: str) -> bool:
    """Whether TTTV2_NATIVE_EMULATE asks for an emulated build of ``name`` (or is bad)."""
    try:
        return emulated_for(name) is not None
    except ValueError:
        return True


def _default_device() -> DeviceConfig:
    from tttv2.hw.optimal import default_device

    return default_device()


def _check_device_profile(device: DeviceConfig | None = None) -> None:
    device = device or _default_device()
    check_profile(device.profile, device.cpu.isa)


def _cpu_flags() -> frozenset[str]:
    from tttv2.hw.device.cpu import parse_cpuinfo

    try:
        return parse_cpuinfo(Path("/proc/cpuinfo").read_text())[1]
    except OSError:
        return frozenset()
