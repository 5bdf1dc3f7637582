"""``tttv2 bench`` names the host its numbers came from: the CPU, its ISA, cores and
threads, the device profile and, on CPU, each native kernel's instruction-set variant and
the many-row GEMM's variant for the run's dtype (text and JSON, the precision comparison too).

The profile is forced, so what the record must say does not depend on the host: under
``cpu:amx`` a bf16 run's GEMM is ``amx`` on any CPU (torch's bf16 GEMM, forced), and under
``cpu:generic`` (no vector ISA) every native kernel is ``portable`` on any CPU."""

from __future__ import annotations

import json

import pytest
import torch

from tttv2.cli.main import main
from tttv2.hw import default_device
from tttv2.hw.kernels.native.build import NATIVE_KERNELS


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def bench(capsys, tiny_llama, *extra: str) -> tuple[int, str, str]:
    return run(
        capsys, "bench", "--checkpoint", str(tiny_llama.path), "--prompt-len", "8", "--gen-len", "3",
        "--bandwidth-mib", "8", *extra,
    )  # fmt: skip


def test_bench_json_names_the_host_and_the_kernel_variants(capsys, tiny_llama, monkeypatch):
    monkeypatch.setenv("TTTV2_DEVICE_PROFILE", "cpu:amx")
    code, out, err = bench(capsys, tiny_llama, "--dtype", "bfloat16", "--json")
    assert code == 0, err
    host = json.loads(out)["config"]["host"]
    assert host["profile"] == "cpu:amx"
    assert host["isa"] == ["AMX", "AVX-512-BF16", "AVX-512", "AVX2"]
    assert host["cpu"] == default_device().cpu.model_name and host["cpu"]
    assert host["torch_threads"] == torch.get_num_threads() and host["usable_cores"] >= 1
    assert host["gemm_many_rows"] == "amx"
    assert set(host["native_kernels"]) == set(NATIVE_KERNELS)


def test_bench_text_under_a_profile_without_vector_isa(capsys, tiny_llama, monkeypatch):
    monkeypatch.setenv("TTTV2_DEVICE_PROFILE", "cpu:generic")
    code, out, err = bench(capsys, tiny_llama, "--dtype", "bfloat16")
    assert code == 0, err
    lines = out.splitlines()
    host = next(ln for ln in lines if ln.startswith("host "))
    assert "ISA no vector ISA" in host and "profile cpu:generic" in host
    kernels = next(ln for ln in lines if ln.startswith("kernels: "))
    for name in NATIVE_KERNELS:
        assert f"{name} portable" in kernels
    assert kernels.endswith("; GEMM of 8+ rows fp32_upcast")


@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
def test_precision_bench_names_the_host(capsys, tiny_llama, monkeypatch, json_output):
    monkeypatch.setenv("TTTV2_DEVICE_PROFILE", "cpu:avx512-bf16")
    extra = ("--dtype", "bfloat16", "--precision", "int8", "--repeats", "1")
    code, out, err = bench(capsys, tiny_llama, *extra, *(("--json",) if json_output else ()))
    assert code == 0, err
    if json_output:
        host = json.loads(out)["config"]["host"]
        assert host["gemm_many_rows"] == "avx512_bf16" and host["profile"] == "cpu:avx512-bf16"
    else:
        assert "; GEMM of 8+ rows avx512_bf16" in out and "profile cpu:avx512-bf16" in out
