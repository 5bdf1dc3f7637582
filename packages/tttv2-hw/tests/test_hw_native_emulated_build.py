"""Emulated builds (``tttv2.hw.kernels.native.emulate``): what they are compiled from and
cached as, how ``TTTV2_NATIVE_EMULATE`` reaches the normal path, and what status says.
The kernels' results under emulation: test_hw_native_emulated_kernels.py."""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
import sys

import pytest
from hw_emulation import needs_emulation

from tttv2.hw.cli import main
from tttv2.hw.kernels.native import (
    NativeKernelUnavailable,
    build_native,
    forget_native_functions,
    native_function,
)
from tttv2.hw.kernels.native.build import compile_native, variant_cflags
from tttv2.hw.kernels.native.emulate import (
    EMULATE_ENV,
    emulated_for,
    requested_variant,
)
from tttv2.hw.kernels.native.isa import KERNEL_VARIANTS, variant


@pytest.fixture
def emulating(monkeypatch):
    """Sets TTTV2_NATIVE_EMULATE for one test (the native functions looked up are forgotten
    before and after)."""
    with monkeypatch.context() as m:
        forget_native_functions()
        yield lambda value: m.setenv(EMULATE_ENV, value)
    forget_native_functions()


def test_the_environment_names_a_variant_for_the_kernels_that_have_it(monkeypatch):
    monkeypatch.delenv(EMULATE_ENV, raising=False)
    assert requested_variant() is None and emulated_for("skinny_linear") is None
    for off in ("", "0", "off"):
        monkeypatch.setenv(EMULATE_ENV, off)
        assert requested_variant() is None
    monkeypatch.setenv(EMULATE_ENV, "avx512_bf16")
    assert [k for k in KERNEL_VARIANTS if emulated_for(k)] == [
        "skinny_linear",
        "decode_layer",
        "routed_experts",
    ]
    assert emulated_for("rms_norm") is None  # no AVX-512 code: its normal choice stands
    monkeypatch.setenv(EMULATE_ENV, "avx2")
    with pytest.raises(ValueError, match="only avx512f, avx512_bf16 can be emulated"):
        requested_variant()


def test_emulated_flags_are_the_avx2_builds_plus_simde(monkeypatch):
    flags = variant_cflags(variant("avx512_bf16"), emulate=True)
    assert "-mavx512f" not in flags and "-mavx512bf16" not in flags
    assert all(f in flags for f in variant("avx2").cflags)
    assert "-DTTTV2_SIMDE_ISA=2" in flags and "-Wno-psabi" in flags
    assert "-DTTTV2_SIMDE_ISA=1" in variant_cflags(variant("avx512f"), emulate=True)
    assert any(f.startswith("-I") for f in flags)
    monkeypatch.setitem(sys.modules, "simde_py", None)  # as if not installed
    with pytest.raises(NativeKernelUnavailable, match="install the simde-py package"):
        variant_cflags(variant("avx512f"), emulate=True)


def test_bad_requests_are_refused(tmp_path):
    with pytest.raises(ValueError, match="needs the variant to emulate"):
        build_native("skinny_linear", emulate=True)
    with pytest.raises(NativeKernelUnavailable, match="avx2 variant has no emulated build"):
        compile_native("skinny_linear", "avx2", out_dir=tmp_path, emulate=True)
    assert not list(tmp_path.iterdir())


@needs_emulation()
def test_a_missing_simde_is_named(monkeypatch, tmp_path, emulating):
    monkeypatch.setitem(sys.modules, "simde_py", None)
    with pytest.raises(NativeKernelUnavailable, match="simde-py"):
        build_native("skinny_linear", isa="avx512f", emulate=True, out_dir=tmp_path)
    emulating("avx512f")
    # asked for, not possible: said out loud, then PyTorch's kernels as for any other reason
    with pytest.warns(RuntimeWarning, match="TTTV2_NATIVE_EMULATE=avx512f: skinny_linear runs PyTorch's kernels, not the emulated build: .*simde-py"):  # fmt: skip
        fn = native_function("skinny_linear", "tttv2_skinny_linear", ())
    assert isinstance(fn, NativeKernelUnavailable) and "simde-py" in str(fn)


@needs_emulation()
def test_a_variant_that_cannot_be_emulated_is_refused_by_name(emulating, capsys, monkeypatch):
    monkeypatch.delenv("TTTV2_NATIVE_KERNELS", raising=False)
    emulating("avx2")
    with pytest.warns(
        RuntimeWarning, match="TTTV2_NATIVE_EMULATE=avx2: skinny_linear runs PyTorch's"
    ):
        fn = native_function("skinny_linear", "tttv2_skinny_linear", ())
    assert isinstance(fn, NativeKernelUnavailable) and "TTTV2_NATIVE_EMULATE=avx2" in str(fn)
    with pytest.warns(RuntimeWarning, match="decode_layer runs PyTorch's kernels"):  # its path
        assert main(["--profile", "cpu:avx2", "--op", "ffn", "--json"]) == 0
    skinny = json.loads(capsys.readouterr().out)["native_kernels"]["skinny_linear"]
    assert not skinny["available"] and skinny["variant"] == "portable"
    assert "TTTV2_NATIVE_EMULATE=avx2" in skinny["variant_reason"]
    assert "avx2" not in skinny["passed_over"]  # the AVX2 build was not what failed


@needs_emulation()
@pytest.mark.skipif(not shutil.which("objdump"), reason="needs objdump to read the machine code")
@pytest.mark.parametrize("isa", ["avx512f", "avx512_bf16"])
def test_emulated_builds_are_cached_apart_and_hold_no_avx512_instruction(isa):
    path, _ = compile_native("skinny_linear", isa, emulate=True)
    native, _ = compile_native("skinny_linear", isa)
    assert path.name.startswith(f"skinny_linear-{isa}-emulated-") and path != native
    code = subprocess.run(["objdump", "-d", str(path)], capture_output=True, text=True).stdout
    assert "vfmadd231ps" in code  # the AVX2 FMAs, emulating the 512-bit ones among others
    assert "zmm" not in code and "vdpbf16ps" not in code  # any AVX2 host runs it
    ctypes.CDLL(str(path))  # and this one loads it


@needs_emulation()
def test_status_says_which_kernels_run_emulated_and_why(emulating, capsys, monkeypatch):
    monkeypatch.delenv("TTTV2_NATIVE_KERNELS", raising=False)
    emulating("avx512_bf16")
    assert main(["--profile", "cpu:avx2", "--op", "ffn", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)["native_kernels"]
    for name in ("skinny_linear", "decode_layer", "routed_experts"):
        s = status[name]
        assert s["available"] and s["emulated"] and s["variant"] == "avx512_bf16", s
        assert "TTTV2_NATIVE_EMULATE=avx512_bf16" in s["variant_reason"]
        assert "-avx512_bf16-emulated-" in s["path"]
    rms = status["rms_norm"]
    assert rms["variant"] == "avx2" and not rms["emulated"]
    assert main(["--profile", "cpu:avx2", "--op", "ffn"]) == 0
    out = capsys.readouterr().out
    assert "\nskinny_linear           avx512_bf16 (emulated)  emulated by SIMDe on AVX2" in out
    assert "\nrms_norm                avx2                    CPU has" in out
