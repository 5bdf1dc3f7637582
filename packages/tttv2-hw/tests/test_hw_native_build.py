"""Building native kernels: cached by source and compiler, and every reason it cannot
happen is an explicit NativeKernelUnavailable (callers then use PyTorch)."""

from __future__ import annotations

import importlib
import platform
import shutil

import pytest

from tttv2.hw.kernels.native import NativeKernelUnavailable, build_native
from tttv2.hw.kernels.native.build import REQUIRED_CPU_FLAGS, check_cpu

build_module = importlib.import_module("tttv2.hw.kernels.native.build")
X86 = platform.machine().lower() in ("x86_64", "amd64")
needs_compiler = pytest.mark.skipif(
    not X86 or not (shutil.which("cc") or shutil.which("gcc")),
    reason="compiles AVX2 code: needs an x86-64 host with a C compiler",
)


@pytest.fixture(autouse=True)
def _x86_host_avx2_profile(monkeypatch):
    """The checks before the compiler see an x86-64 host under the cpu:avx2 profile
    (the flags are passed in), whatever machine and profile run the tests."""
    monkeypatch.setenv("TTTV2_DEVICE_PROFILE", "cpu:avx2")
    monkeypatch.setattr(build_module.platform, "machine", lambda: "x86_64")


@needs_compiler
def test_first_build_compiles_and_the_second_loads_from_the_cache(tmp_path):
    first = build_native("skinny_linear", flags=REQUIRED_CPU_FLAGS, out_dir=tmp_path)
    second = build_native("skinny_linear", flags=REQUIRED_CPU_FLAGS, out_dir=tmp_path)
    assert first.compiled and not second.compiled
    assert first.path == second.path and first.path.parent == tmp_path
    assert [p.name for p in tmp_path.iterdir()] == [first.path.name]  # no temporary files left
    assert hasattr(second.library, "tttv2_skinny_linear")


@pytest.mark.parametrize("value", ["0", "off", "False"])
def test_turned_off_by_the_environment(monkeypatch, tmp_path, value):
    monkeypatch.setenv("TTTV2_NATIVE_KERNELS", value)
    with pytest.raises(NativeKernelUnavailable, match=f"TTTV2_NATIVE_KERNELS={value}"):
        build_native("skinny_linear", flags=REQUIRED_CPU_FLAGS, out_dir=tmp_path)


def test_cpu_without_the_isa_is_refused_by_name():
    with pytest.raises(NativeKernelUnavailable, match="lacks f16c"):
        check_cpu(frozenset({"avx2", "fma"}), "x86_64")
    with pytest.raises(NativeKernelUnavailable, match="x86-64 only .*aarch64"):
        check_cpu(REQUIRED_CPU_FLAGS, "aarch64")
    check_cpu(REQUIRED_CPU_FLAGS | {"avx512f"}, "x86_64")  # enough: no error


def test_missing_compiler_is_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", "no-such-compiler-xyz")
    monkeypatch.setenv("PATH", str(tmp_path))  # nor cc nor gcc
    with pytest.raises(NativeKernelUnavailable, match="no C compiler found"):
        build_native("skinny_linear", flags=REQUIRED_CPU_FLAGS, out_dir=tmp_path)


def test_compile_error_carries_the_compiler_output(monkeypatch, tmp_path):
    fake = tmp_path / "fakecc"
    fake.write_text(
        "#!/bin/sh\n[ \"$1\" = --version ] && exit 0\necho 'error: broken on purpose' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("CC", str(fake))
    with pytest.raises(NativeKernelUnavailable, match="broken on purpose"):
        build_native("skinny_linear", flags=REQUIRED_CPU_FLAGS, out_dir=tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.so"))  # nothing half-written is cached
