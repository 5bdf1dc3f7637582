"""The ISA variants of the native kernels (``tttv2.hw.kernels.native.isa``):

* the selection, for every variant, from hand-written /proc/cpuinfo flag sets of real
  CPUs and from forced device profiles (pure Python: the host does not matter);
* every variant compiles on any x86-64 host with a C compiler (compile only: a host without
  AVX-512 cannot load that code), and the AVX-512 code paths are really in those builds;
* every variant is checked against the same float64 reference: natively where the host
  runs it, else emulated (its code paths by SIMDe on AVX2: ``tttv2.hw.kernels.native.emulate``;
  the test id and the build say which). On an AVX2 host all four run, two of them emulated;
  on an AVX-512-BF16 host all four run natively. Without ``simde-py`` the emulated ones are
  skipped with the reason, except under CI=true, where they fail.
"""

from __future__ import annotations

import ctypes
import importlib
import platform
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from hw_close import assert_close
from hw_emulation import why_not_emulated

from tttv2.hw.device.cpu import parse_cpuinfo
from tttv2.hw.kernels.native import NativeKernelUnavailable, build_native
from tttv2.hw.kernels.native.build import compile_native
from tttv2.hw.kernels.native.emulate import emulable
from tttv2.hw.kernels.native.isa import (
    KERNEL_VARIANTS,
    VARIANT_NAMES,
    VARIANTS,
    select_variant,
    variant,
)

linear_module = importlib.import_module("tttv2.hw.kernels.linear")
X86 = platform.machine().lower() in ("x86_64", "amd64")
COMPILER = shutil.which("cc") or shutil.which("gcc")
needs_compiler = pytest.mark.skipif(
    not X86 or not COMPILER, reason="compiles x86 code: needs an x86-64 host with a C compiler"
)

BASE = "fpu sse sse2 ssse3 sse4_1 sse4_2 popcnt avx f16c"
#: cpuinfo flags of real CPUs, written out by hand from their data sheets.
ZEN2 = f"{BASE} avx2 fma"
SKYLAKE_SP = f"{ZEN2} avx512f avx512bw avx512vl avx512cd avx512dq"
ZEN4 = f"{SKYLAKE_SP} avx512_bf16 avx512_vnni"
SAPPHIRE_RAPIDS = f"{ZEN4} amx_tile amx_bf16 amx_int8"
IVY_BRIDGE = BASE  # AVX only
FULL_PROFILE = ("AMX", "AVX-512-BF16", "AVX-512", "AVX2")  # what detection lists on SPR

#: (CPU flags, machine, profile, its ISA list, kernel) -> variant and a reason fragment.
SELECTIONS = {
    "spr-skinny": (SAPPHIRE_RAPIDS, "x86_64", "cpu", FULL_PROFILE, "skinny_linear", "avx512_bf16", "avx512_bf16"),
    "zen4-decode_layer": (ZEN4, "x86_64", "cpu", FULL_PROFILE[1:], "decode_layer", "avx512_bf16", "avx512_bf16"),
    "skylake-skinny": (SKYLAKE_SP, "x86_64", "cpu", ("AVX-512", "AVX2"), "skinny_linear", "avx512f", "avx512f"),
    "zen2-skinny": (ZEN2, "x86_64", "cpu", ("AVX2",), "skinny_linear", "avx2", "CPU lacks avx512_bf16"),
    # the kernel has no wider code: AVX2 build even on the best CPU
    "spr-rms_norm": (SAPPHIRE_RAPIDS, "x86_64", "cpu", FULL_PROFILE, "rms_norm", "avx2", "rms_norm has no avx512_bf16/avx512f code"),
    # the profile pins the variant below what the CPU could run
    "zen4-pinned-avx2": (ZEN4, "x86_64", "cpu:avx2", ("AVX2",), "skinny_linear", "avx2", "device profile cpu:avx2 lacks AVX-512-BF16"),
    "spr-pinned-avx512": (SAPPHIRE_RAPIDS, "x86_64", "cpu:avx512", ("AVX-512", "AVX2"), "routed_experts", "avx512f", "avx512f"),
    # ... but never above it
    "zen2-profile-bf16": (ZEN2, "x86_64", "cpu:avx512-bf16", FULL_PROFILE[1:], "skinny_linear", "avx2", "CPU lacks avx512_bf16"),
    "ivy-bridge": (IVY_BRIDGE, "x86_64", "cpu", (), "skinny_linear", "portable", "CPU lacks avx2, fma"),
    "generic-profile": (ZEN4, "x86_64", "cpu:generic", (), "skinny_linear", "portable", "device profile cpu:generic lacks AVX2"),
    "arm": ("fp asimd evtstrm bf16 sve", "aarch64", "cpu", ("SVE", "NEON-BF16", "NEON"), "decode_layer", "portable", "x86-64 only (this machine: aarch64)"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(SELECTIONS))
def test_selection_from_cpu_flags_and_profile(case):
    flags, machine, profile, isa, kernel, expected, why = SELECTIONS[case]
    choice = select_variant(
        kernel,
        cpu_flags=frozenset(flags.split()),
        machine=machine,
        profile=profile,
        profile_isa=isa,
    )
    assert choice.variant.name == expected
    text = choice.reason + " " + " ".join(r for _, r in choice.passed_over)
    assert why in text, text


def test_every_variant_is_selected_by_some_host():
    assert {case[5] for case in SELECTIONS.values()} == set(VARIANT_NAMES)


def test_turned_off_means_portable_whatever_the_cpu():
    choice = select_variant(
        "skinny_linear",
        cpu_flags=frozenset(SAPPHIRE_RAPIDS.split()),
        machine="x86_64",
        profile="cpu",
        profile_isa=FULL_PROFILE,
        disabled_by="TTTV2_NATIVE_KERNELS=0",
    )
    assert choice.variant.name == "portable" and "TTTV2_NATIVE_KERNELS=0" in choice.reason


def test_variant_flags_follow_the_cpu_isa_names():
    # written out from the compiler's -m options and the CPUs' cpuinfo flags, not from the table
    assert variant("avx512_bf16").cpu_flags == frozenset(
        "avx2 fma f16c avx512f avx512bw avx512vl avx512_bf16".split()
    )
    assert variant("avx512f").cpu_flags == frozenset(
        "avx2 fma f16c avx512f avx512bw avx512vl".split()
    )
    assert variant("avx2").cpu_flags == frozenset("avx2 fma f16c".split())
    assert "-mavx512bf16" in variant("avx512_bf16").cflags
    assert (
        "-mavx512bf16" not in variant("avx512f").cflags and "-mavx512f" in variant("avx512f").cflags
    )
    assert variant("avx2").cflags == ("-mavx2", "-mfma", "-mf16c")  # today's build, unchanged
    assert not variant("portable").native
    with pytest.raises(ValueError, match="unknown ISA variant 'sse9'"):
        variant("sse9")


def test_a_named_variant_the_cpu_cannot_run_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("TTTV2_DEVICE_PROFILE", "cpu:avx2")
    with pytest.raises(
        NativeKernelUnavailable, match="CPU lacks avx512_bf16 .*avx512_bf16 variant"
    ):
        build_native(
            "skinny_linear",
            flags=frozenset(SKYLAKE_SP.split()),
            out_dir=tmp_path,
            isa="avx512_bf16",
        )
    assert not list(tmp_path.iterdir())  # refused before compiling anything


NATIVE_BUILDS = [(k, v) for k, names in KERNEL_VARIANTS.items() for v in names if v != "portable"]


@needs_compiler
@pytest.mark.parametrize(("kernel", "isa"), NATIVE_BUILDS)
def test_every_variant_compiles_here(kernel, isa, tmp_path):
    """Compile only: whether this host could run it does not matter."""
    path, compiled = compile_native(kernel, isa, out_dir=tmp_path)
    assert compiled and path.is_file() and path.stat().st_size > 0
    assert isa in path.name or isa == "avx2"  # variants never share a cache entry


@needs_compiler
@pytest.mark.skipif(not shutil.which("objdump"), reason="needs objdump to read the machine code")
def test_the_avx512_code_paths_are_in_their_builds(tmp_path):
    """The #if'd paths are really compiled in: 512-bit FMAs in both AVX-512 builds,
    vdpbf16ps in the AVX-512-BF16 one only, neither in the AVX2 build."""

    def code(isa: str) -> str:
        path, _ = compile_native("skinny_linear", isa, out_dir=tmp_path)
        return subprocess.run(["objdump", "-d", str(path)], capture_output=True, text=True).stdout

    avx2, avx512f, bf16 = code("avx2"), code("avx512f"), code("avx512_bf16")
    assert "zmm" not in avx2 and "vdpbf16ps" not in avx2
    assert "vfmadd231ps" in avx512f and "zmm" in avx512f and "vdpbf16ps" not in avx512f
    assert "vdpbf16ps" in bf16


# -- every variant this host can run, against one reference ---------------------------

try:
    HOST_FLAGS = parse_cpuinfo(Path("/proc/cpuinfo").read_text())[1]
except OSError:  # not Linux: no native variant is run
    HOST_FLAGS = frozenset()
_SCALED = (
    (ctypes.c_void_p, ctypes.c_int) * 2 + (ctypes.c_void_p,) + (ctypes.c_void_p, ctypes.c_int) * 2
)
_SCALED += (ctypes.c_int64,) * 4
CODES = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2, torch.int8: 3}
#: One rounding of the output in each dtype, plus fp32 sums over K <= 300 terms in any order.
TOLERANCE = {torch.float32: (1e-4, 1e-5), torch.bfloat16: (5e-2, 8e-3), torch.float16: (1e-2, 1e-3)}


def _runnable(isa: str):
    """``isa`` run natively where the host can (id ``<isa>-native``), else emulated where
    it has an emulated build (``<isa>-emulated``), else skipped with the reason."""
    v = variant(isa)
    missing = sorted(v.cpu_flags - HOST_FLAGS)
    reason, how = "", "native" if v.native else "pytorch"
    if v.native and not X86:
        reason = f"{isa}: x86-64 code, this host is {platform.machine()}"
    elif v.native and not COMPILER:
        reason = f"{isa}: no C compiler here"
    elif v.native and missing and emulable(isa):
        how = "emulated"  # this CPU lacks it: its code paths by SIMDe on AVX2
        why = why_not_emulated()
        reason = (
            f"{isa}: this CPU lacks {', '.join(missing)} and cannot emulate it: {why}"
            if why
            else ""
        )
    elif v.native and missing:
        reason = (
            f"{isa}: this host's CPU lacks {', '.join(missing)} (compiled above, cannot run here)"
        )
    mark = pytest.mark.skipif(bool(reason), reason=reason or "runs")
    return pytest.param((isa, how == "emulated"), marks=mark, id=f"{isa}-{how}")


def _case(rows, n, k, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, k, generator=g).to(dtype)
    b = torch.randn(n, generator=g).to(dtype)
    w = (torch.randn(n, k, generator=g) / k**0.5).to(dtype)
    return x, w, b


def _run(isa: str, emulated: bool, x, w, scale, b, monkeypatch) -> torch.Tensor:
    if isa == "portable":  # what callers run when no native variant applies: PyTorch's path
        monkeypatch.setattr(linear_module, "skinny_linear_applies", lambda *a: False)
        assert scale is None  # int8 weights: native variants only
        return linear_module.cpu_linear(x, w, b)
    # cached per variant (and emulated apart) across test runs
    build = build_native("skinny_linear", isa=isa, emulate=emulated)
    assert build.variant == isa and build.emulated == emulated
    fn = build.library.tttv2_skinny_linear_scaled
    fn.argtypes, fn.restype = list(_SCALED), ctypes.c_int
    y = torch.empty(x.shape[0], w.shape[0], dtype=x.dtype)
    status = fn(
        x.data_ptr(), CODES[x.dtype], w.data_ptr(), CODES[w.dtype],
        scale.data_ptr() if scale is not None else None,
        b.data_ptr(), CODES[b.dtype], y.data_ptr(), CODES[x.dtype],
        x.shape[0], w.shape[0], x.shape[1], 256 << 10,
    )  # fmt: skip
    assert status == 0
    return y


@pytest.mark.parametrize("build", [_runnable(v.name) for v in VARIANTS])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize(
    ("rows", "n", "k"), [(1, 77, 203), (3, 37, 256), (4, 24, 96), (8, 77, 300)]
)
def test_every_variant_matches_the_reference(build, dtype, rows, n, k, monkeypatch):
    # K with and without tails of 8, 16 and 32; N with tails of the 3- and 4-row blocks
    monkeypatch.setenv("TTTV2_DEVICE_PROFILE", "cpu")  # the host's own: the CPU decides
    x, w, b = _case(rows, n, k, dtype, seed=rows * 1000 + k)
    with torch.inference_mode():
        y = _run(*build, x, w, None, b, monkeypatch)
    ref = x.double() @ w.double().T + b.double()
    assert y.dtype == dtype
    atol, rtol = TOLERANCE[dtype]
    assert_close(y, ref, atol=atol, rtol=rtol)


@pytest.mark.parametrize("build", [_runnable(v.name) for v in VARIANTS if v.native])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_every_variant_int8_weights_match_the_reference(build, dtype, monkeypatch):
    monkeypatch.setenv("TTTV2_DEVICE_PROFILE", "cpu")
    g = torch.Generator().manual_seed(7)
    x = torch.randn(5, 200, generator=g).to(dtype)
    q = torch.randint(-127, 128, (45, 200), generator=g, dtype=torch.int8)
    scale = torch.rand(45, generator=g) / 500 + 1e-3
    b = torch.randn(45, generator=g).to(dtype)
    y = _run(*build, x, q, scale, b, monkeypatch)
    ref = x.double() @ (q.double() * scale.double()[:, None]).T + b.double()
    atol, rtol = TOLERANCE[dtype]
    assert_close(y, ref, atol=atol, rtol=rtol)
