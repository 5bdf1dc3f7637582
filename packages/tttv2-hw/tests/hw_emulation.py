"""Whether this host runs the native kernels' AVX-512 code paths emulated (SIMDe on AVX2,
``tttv2.hw.kernels.native.emulate``), and how a test checks which build really ran.

Outside CI a host without ``simde-py`` skips those tests with the reason; with ``CI=true``
they run and fail, naming the missing package: CI must never pass without running them."""

from __future__ import annotations

import ctypes
import os
import platform
import shutil
from pathlib import Path

import pytest

from tttv2.hw.device.cpu import parse_cpuinfo
from tttv2.hw.kernels.native.build import REQUIRED_CPU_FLAGS
from tttv2.hw.kernels.native.emulate import SIMDE_PACKAGE, simde_include

IN_CI = os.environ.get("CI", "").strip().lower() == "true"
X86 = platform.machine().lower() in ("x86_64", "amd64")
COMPILER = shutil.which(os.environ.get("CC") or "cc") or shutil.which("gcc")
try:
    HOST_FLAGS = parse_cpuinfo(Path("/proc/cpuinfo").read_text())[1]
except OSError:  # not Linux: no native kernel runs
    HOST_FLAGS = frozenset()


def why_not_emulated() -> str:
    """Why this host cannot run an emulated build, or ``""``. A missing ``simde-py`` is a
    reason only outside CI (with CI=true the test runs, and fails naming the package)."""
    if not X86:
        return f"emulated builds are x86-64 code (this host: {platform.machine()})"
    if not COMPILER:
        return "no C compiler here"
    missing = sorted(REQUIRED_CPU_FLAGS - HOST_FLAGS)
    if missing:
        return f"emulated builds run on AVX2: this CPU lacks {', '.join(missing)}"
    if simde_include() is None and not IN_CI:
        return f"{SIMDE_PACKAGE} is not installed (the dev dependency group has it; CI=true fails)"
    return ""


def needs_emulation() -> pytest.MarkDecorator:
    """Skip (with the reason) where :func:`why_not_emulated` gives one."""
    reason = why_not_emulated()
    return pytest.mark.skipif(bool(reason), reason=reason or "emulated builds run here")


def address(fn: object) -> int:
    """Where a ctypes function is in memory: two lookups of one symbol in one library agree,
    lookups in two libraries (the emulated build and the normal one) do not."""
    value = ctypes.cast(fn, ctypes.c_void_p).value
    assert value, f"{fn!r} has no address"
    return value
