"""Compile a kernel's C source on first use, cache the shared library, load it with ctypes.

No package index holds prebuilt wheels here and the kernels are a few hundred lines, so
they ship as C source and are built by the system C compiler (``$CC``, else ``cc``/``gcc``)
the first time a process needs them: about a second, once per source, compiler and flags.
The library is cached under ``$TTTV2_CACHE_DIR/native`` by a hash of all three, written to a
temporary name and renamed into place, so parallel processes (pytest-xdist workers) never
load a half-written file. ``TTTV2_NATIVE_KERNELS=0`` turns native kernels off.

The kernels also follow the device profile (``TTTV2_DEVICE_PROFILE``): a profile whose ISA
list lacks AVX2 (``cpu:generic``, the non-x86 fallback) turns them off even on a host that
could run them, so that profile's kernel selection is the same on every host.

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
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch  # noqa: F401  loads the OpenMP runtime (libgomp) the kernels link to and share

from tttv2.hw.cache import cache_dir

if TYPE_CHECKING:
    from _ctypes import CFuncPtr

log = logging.getLogger(__name__)

DISABLE_ENV = "TTTV2_NATIVE_KERNELS"
#: /proc/cpuinfo flags every kernel here is compiled for.
REQUIRED_CPU_FLAGS = frozenset({"avx2", "fma", "f16c"})
#: The ISA (tttv2.hw.device.cpu names) a device profile must list for the kernels to run.
REQUIRED_ISA = "AVX2"
CFLAGS = ("-O3", "-mavx2", "-mfma", "-mf16c", "-fopenmp", "-fPIC", "-shared", "-std=c11", "-Wall")


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


#: The kernels of this package (``native/<name>.c``).
NATIVE_KERNELS = (
    "skinny_linear",
    "rms_norm",
    "paged_decode_attention",
    "decode_layer",
    "routed_experts",
)


def native_status() -> dict[str, dict[str, object]]:
    """Per kernel: built or loaded from the cache, in how many seconds, or why not (what
    ``tttv2-hw`` reports; building here is the warm-up a first decode would pay)."""
    status: dict[str, dict[str, object]] = {}
    for name in NATIVE_KERNELS:
        try:
            build = build_native(name)
        except NativeKernelUnavailable as reason:
            status[name] = {"available": False, "reason": str(reason)}
        else:
            status[name] = {"available": True, "compiled": build.compiled, "seconds": round(build.seconds, 3),
                            "path": str(build.path)}  # fmt: skip
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
    name: str, *, flags: frozenset[str] | None = None, out_dir: Path | None = None
) -> NativeBuild:
    """Compile (or load from the cache) the kernel ``native/<name>.c`` of this package."""
    started = time.perf_counter()
    if native_disabled():
        raise NativeKernelUnavailable(f"turned off by {DISABLE_ENV}={os.environ[DISABLE_ENV]}")
    if flags is None:
        flags = _cpu_flags()
    check_cpu(flags, platform.machine())
    _check_device_profile()
    package = resources.files(__package__)
    # a kernel may include headers and other kernels' sources: all of them are its source
    sources = {f.name: f.read_bytes() for f in package.iterdir() if f.name.endswith((".c", ".h"))}
    if f"{name}.c" not in sources:
        raise NativeKernelUnavailable(
            f"no native kernel named {name!r} (have {', '.join(NATIVE_KERNELS)})"
        )
    compiler = find_compiler()
    version = _compiler_version(compiler)
    parts = [
        name.encode(),
        *(sources[f] for f in sorted(sources)),
        " ".join(CFLAGS).encode(),
        compiler.encode(),
        version,
    ]
    key = hashlib.sha256(b"\0".join(parts)).hexdigest()
    out_dir = out_dir or cache_dir() / "native"
    target = out_dir / f"{name}-{key[:16]}.so"
    compiled = not target.is_file()
    if compiled:
        log.info("compiling native kernel %s into %s (first use)", name, target)
        _compile(compiler, sources, target, name)
    try:
        library = ctypes.CDLL(str(target))
    except OSError as error:
        raise NativeKernelUnavailable(f"cannot load {target}: {error}") from error
    return NativeBuild(name, target, library, compiled, time.perf_counter() - started)


def _compile(compiler: str, sources: dict[str, bytes], target: Path, name: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src, out = Path(tmp) / f"{name}.c", Path(tmp) / f"{name}.so"
        for file, text in sources.items():
            (Path(tmp) / file).write_bytes(text)
        result = subprocess.run(
            [compiler, *CFLAGS, str(src), "-o", str(out)], capture_output=True, text=True
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
    :class:`NativeKernelUnavailable` and use PyTorch instead."""
    try:
        build = build_native(name)
    except NativeKernelUnavailable as reason:
        return reason
    fn = getattr(build.library, symbol)
    fn.argtypes, fn.restype = list(argtypes), ctypes.c_int
    return fn


def _compiler_version(compiler: str) -> bytes:
    try:
        return subprocess.run([compiler, "--version"], capture_output=True, check=False).stdout
    except OSError as error:
        raise NativeKernelUnavailable(f"cannot run {compiler}: {error}") from error


def _check_device_profile() -> None:
    from tttv2.hw.optimal import default_device

    device = default_device()
    check_profile(device.profile, device.cpu.isa)


def _cpu_flags() -> frozenset[str]:
    from tttv2.hw.device.cpu import parse_cpuinfo

    try:
        return parse_cpuinfo(Path("/proc/cpuinfo").read_text())[1]
    except OSError:
        return frozenset()
