"""The four CPU profiles the library knows -- AVX2-only, AVX-512, AVX-512-BF16 and the
non-x86 fallback -- each exercised on whatever host runs the tests: detection from a
/proc/cpuinfo flag set of such a machine, and, with the profile forced, the defaults and
the kernel selection tttv2-hw derives from it (the host cannot change any of them)."""

from __future__ import annotations

import importlib

import pytest
import torch

from tttv2.hw import default_device, get_optimal_params
from tttv2.hw.device.cpu import BF16_NATIVE_ISAS, isa_from_flags
from tttv2.hw.device.profiles import CPU_ISA_PROFILES
from tttv2.hw.kernels.linear import cpu_linear, native_half_matmul
from tttv2.hw.kernels.native import NativeKernelUnavailable, build_native
from tttv2.hw.kernels.native.build import REQUIRED_CPU_FLAGS
from tttv2.hw.kernels.native.skinny_linear import SKINNY_MAX_ROWS

build_module = importlib.import_module("tttv2.hw.kernels.native.build")
linear_module = importlib.import_module("tttv2.hw.kernels.linear")

X86_BASE = "fpu sse sse2 ssse3 sse4_1 sse4_2 popcnt avx f16c"
#: profile -> (/proc/cpuinfo "flags" of such a machine, its ISA list, native bf16, compute
#: and KV-cache dtype, native kernels run). Written out by hand from the CPUs' data sheets.
PROFILES = {
    "cpu:avx2": (f"{X86_BASE} avx2 fma", ("AVX2",), False, "float32", True),  # Zen 2, Haswell
    "cpu:avx512": (
        f"{X86_BASE} avx2 fma avx512f avx512bw avx512vl avx512cd",  # Skylake-SP
        ("AVX-512", "AVX2"),
        False,
        "float32",
        True,
    ),
    "cpu:avx512-bf16": (
        f"{X86_BASE} avx2 fma avx512f avx512bw avx512vl avx512_bf16",  # Zen 4, Cooper Lake
        ("AVX-512-BF16", "AVX-512", "AVX2"),
        True,
        "bfloat16",
        True,
    ),
    "cpu:generic": ("fp asimd evtstrm crc32 cpuid", (), False, "float32", False),  # Neoverse N1
}
# the fallback's flag set is an Arm one: the vector ISA it has (NEON) is none tttv2's CPU
# kernels are built for, so it behaves as the profile with no ISA
ARM_ISA = ("NEON",)


@pytest.fixture(params=sorted(PROFILES))
def profile(request, monkeypatch):
    monkeypatch.setenv("TTTV2_DEVICE_PROFILE", request.param)
    monkeypatch.delenv("TTTV2_PARAMS", raising=False)
    return request.param


def test_every_profile_of_the_table_is_a_named_cpu_profile():
    assert {f"cpu:{name}" for name in CPU_ISA_PROFILES} >= set(PROFILES)


def test_cpuinfo_flags_of_each_kind_of_machine_give_its_profile(profile):
    flags, isa, bf16, _, _ = PROFILES[profile]
    detected = isa_from_flags(frozenset(flags.split()))
    assert detected == (ARM_ISA if profile == "cpu:generic" else isa)
    assert any(i in BF16_NATIVE_ISAS for i in detected) is bf16
    assert CPU_ISA_PROFILES[profile.removeprefix("cpu:")] == isa


def test_forced_profile_sets_the_defaults(profile):
    _, isa, bf16, dtype, _ = PROFILES[profile]
    device = default_device()
    assert (device.profile, device.source, device.device_type) == (profile, "environment", "cpu")
    assert device.cpu.isa == isa and device.bf16_native is bf16
    assert device.preferred_dtype == dtype
    assert get_optimal_params("kv_cache", "decode").kv_cache_dtype == dtype
    assert get_optimal_params("attention", "decode").compute_dtype == dtype


def test_forced_profile_selects_the_half_precision_product(profile, monkeypatch):
    bf16 = PROFILES[profile][2]
    assert native_half_matmul(torch.bfloat16) is bf16
    assert native_half_matmul(torch.float16) is False
    calls = []
    monkeypatch.setattr(
        linear_module, "upcast_linear", lambda *a: calls.append(a) or torch.zeros(20, 8)
    )
    rows = SKINNY_MAX_ROWS + 4  # past the native decode kernel: F.linear or the fp32 path
    cpu_linear(torch.randn(rows, 16).bfloat16(), torch.randn(8, 16).bfloat16())
    assert len(calls) == (0 if bf16 else 1)  # converted to fp32 only without native bf16


def test_forced_profile_decides_whether_native_kernels_build(profile, monkeypatch, tmp_path):
    runs = PROFILES[profile][4]
    # an x86 host with the kernels' flags and no compiler: what stops the build says
    # whether the profile let it get that far, whatever machine runs this test
    monkeypatch.setattr(build_module.platform, "machine", lambda: "x86_64")

    def no_compiler() -> str:
        raise NativeKernelUnavailable("no compiler (test)")

    monkeypatch.setattr(build_module, "find_compiler", no_compiler)
    with pytest.raises(NativeKernelUnavailable) as reason:
        build_native("skinny_linear", flags=REQUIRED_CPU_FLAGS, out_dir=tmp_path)
    if runs:
        assert str(reason.value) == "no compiler (test)"
    else:
        assert str(reason.value) == (
            f"device profile {profile} has no vector ISA; the native kernels need AVX2"
        )
