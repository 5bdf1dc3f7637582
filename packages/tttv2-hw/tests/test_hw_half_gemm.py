"""The variants of the many-row half-precision product (``tttv2.hw.kernels.half_gemm``):

* the selection, for every variant, from hand-written /proc/cpuinfo flag sets of real CPUs
  (through the same detection as the device) and from forced profiles: the host does not
  matter;
* every variant's code path runs here, forced by its profile, against one float64
  reference (torch's bf16 GEMM runs on any CPU, slowly where it converts element by element);
* ``tttv2-hw`` shows the choice and why, as text and JSON.
"""

from __future__ import annotations

import importlib
import json

import pytest
import torch
from hw_close import assert_close

from tttv2.hw.cli import main
from tttv2.hw.device.cpu import BF16_NATIVE_ISAS, isa_from_flags
from tttv2.hw.kernels.half_gemm import (
    GEMM_VARIANT_NAMES,
    GEMM_VARIANTS,
    gemm_variant,
    half_gemm_choice,
    select_half_gemm,
)
from tttv2.hw.kernels.linear import UPCAST_MIN_ROWS, cpu_linear
from tttv2.hw.kernels.native.skinny_linear import SKINNY_MAX_ROWS

linear_module = importlib.import_module("tttv2.hw.kernels.linear")

X86 = "fpu sse sse2 ssse3 sse4_1 sse4_2 popcnt avx f16c avx2 fma"
SKYLAKE_SP = f"{X86} avx512f avx512bw avx512vl avx512cd avx512dq"
ZEN4 = f"{SKYLAKE_SP} avx512_bf16 avx512_vnni"
SAPPHIRE_RAPIDS = f"{ZEN4} amx_tile amx_bf16 amx_int8"
GRAVITON3 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid sve bf16 i8mm"
NEOVERSE_N1 = "fp asimd evtstrm crc32 cpuid"

#: (CPU flags, dtype) -> the variant, and a fragment of the reason.
HOSTS = {
    "spr-bf16": (SAPPHIRE_RAPIDS, torch.bfloat16, "amx", "lists AMX"),
    "zen4-bf16": (ZEN4, torch.bfloat16, "avx512_bf16", "lists AVX-512-BF16"),
    "skylake-bf16": (SKYLAKE_SP, torch.bfloat16, "fp32_upcast", "no bf16 dot products"),
    "zen2-bf16": (X86, torch.bfloat16, "fp32_upcast", "no bf16 dot products"),
    "graviton3-bf16": (GRAVITON3, torch.bfloat16, "neon_bf16", "lists NEON-BF16"),
    "neoverse-n1-bf16": (NEOVERSE_N1, torch.bfloat16, "fp32_upcast", "no bf16 dot products"),
    "spr-fp16": (SAPPHIRE_RAPIDS, torch.float16, "fp32_upcast", "fp16 dot products"),
}


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_selection_from_cpu_flags(host):
    flags, dtype, expected, reason = HOSTS[host]
    isa = isa_from_flags(frozenset(flags.split()))
    choice = select_half_gemm(dtype, profile="cpu", profile_isa=isa)
    assert choice.variant.name == expected
    assert reason in choice.reason
    better = GEMM_VARIANT_NAMES[: GEMM_VARIANT_NAMES.index(expected)]
    assert [name for name, _ in choice.passed_over] == list(better)


def test_every_variant_is_selected_by_some_host():
    assert {expected for _, _, expected, _ in HOSTS.values()} == set(GEMM_VARIANT_NAMES)


def test_a_forced_profile_caps_the_choice():
    """Sapphire Rapids' CPU under a forced AVX2 profile takes the fp32 path, as on Zen 2."""
    choice = select_half_gemm(torch.bfloat16, profile="cpu:avx2", profile_isa=("AVX2",))
    assert choice.variant.name == "fp32_upcast"
    assert (
        dict(choice.passed_over)["amx"]
        == "profile cpu:avx2 lacks AMX (cpuinfo: amx_tile, amx_bf16)"
    )


def test_the_torch_variants_are_the_native_bf16_isas():
    """One rule: the ISAs whose profiles run torch's bf16 GEMM are those the device calls
    bf16-native (and so prefers bf16 for)."""
    assert {v.isa for v in GEMM_VARIANTS if v.torch_half} == set(BF16_NATIVE_ISAS)
    assert GEMM_VARIANTS[-1].isa is None and not GEMM_VARIANTS[-1].torch_half


def test_bad_names_and_dtypes_are_refused():
    with pytest.raises(ValueError, match="unknown half-precision GEMM variant 'amx2'.*known: amx"):
        gemm_variant("amx2")
    with pytest.raises(ValueError, match="bfloat16 and float16, not torch.float32"):
        select_half_gemm(torch.float32, profile="cpu", profile_isa=())


#: forced profile -> the variant it selects for bf16; each variant's code path runs here.
FORCED = {
    "cpu:amx": "amx",
    "cpu:avx512-bf16": "avx512_bf16",
    "cpu:avx512": "fp32_upcast",
    "cpu:avx2": "fp32_upcast",
    "cpu:generic": "fp32_upcast",
}


@pytest.mark.parametrize("profile", sorted(FORCED))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_every_variant_runs_here_against_the_reference(profile, dtype, monkeypatch):
    monkeypatch.setenv("TTTV2_DEVICE_PROFILE", profile)
    monkeypatch.delenv("TTTV2_PARAMS", raising=False)
    choice = half_gemm_choice(dtype)
    assert choice.variant.name == (FORCED[profile] if dtype == torch.bfloat16 else "fp32_upcast")
    upcasts = []
    real_upcast = linear_module.upcast_linear
    monkeypatch.setattr(
        linear_module, "upcast_linear", lambda *a: upcasts.append(a) or real_upcast(*a)
    )
    g = torch.Generator().manual_seed(5)
    rows = max(UPCAST_MIN_ROWS, SKINNY_MAX_ROWS + 1)  # past the native few-row kernel
    x = torch.randn(rows, 96, generator=g).to(dtype)
    w = (torch.randn(40, 96, generator=g) / 96**0.5).to(dtype)
    b = torch.randn(40, generator=g).to(dtype)
    y = cpu_linear(x, w, b)
    assert len(upcasts) == (0 if choice.variant.torch_half else 1)
    assert y.dtype == dtype
    ref = x.double() @ w.double().T + b.double()
    assert_close(y, ref, atol=2e-2, rtol=1e-2)  # fp32 sums, one rounding to the half dtype


def test_tttv2_hw_shows_the_choice_and_why(capsys):
    assert main(["--profile", "cpu:avx512-bf16", "--op", "norm"]) == 0
    text = capsys.readouterr().out
    line = next(ln for ln in text.splitlines() if ln.startswith("bfloat16 "))
    assert "avx512_bf16" in line and "oneDNN's AVX-512-BF16 kernels" in line
    assert "passed over amx: profile cpu:avx512-bf16 lacks AMX" in line
    assert f"GEMM, {UPCAST_MIN_ROWS}+ rows" in text
    assert main(["--profile", "cpu:amx", "--op", "norm", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["half_gemm"]
    assert shown["bfloat16"]["variant"] == "amx" and shown["bfloat16"]["passed_over"] == {}
    assert shown["float16"]["variant"] == "fp32_upcast"
