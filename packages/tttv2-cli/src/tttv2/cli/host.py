"""The host a benchmark ran on, as its record and its first lines name it.

Numbers from different hosts must never be compared as if they came from one. A benchmark
therefore records the CPU model, its vector ISA, the cores and threads, and which kernels ran
on CPU: the instruction-set variant of each native kernel (``avx2``, ``avx512_bf16``, marked
``(emulated)`` when SIMDe emulated it) and the GEMM variant for products of many rows in the
run's dtype (``fp32_upcast``, ``amx``, ...). The same facts appear in ``tttv2 hw``, with the
reasons.
"""

from __future__ import annotations

from typing import Any

import torch

from tttv2.hw import DeviceConfig
from tttv2.hw.kernels.half_gemm import HALF_DTYPES, select_half_gemm
from tttv2.hw.kernels.linear import UPCAST_MIN_ROWS
from tttv2.hw.kernels.native import native_status


def host_facts(config: DeviceConfig, dtype: torch.dtype) -> dict[str, Any]:
    """What a benchmark's numbers depend on about this host, for a run in ``dtype`` on the
    device ``config`` describes (kernel variants only for a CPU device)."""
    cpu = config.cpu
    facts: dict[str, Any] = {
        "cpu": cpu.model_name,
        "isa": list(cpu.isa),
        "torch_capability": cpu.torch_capability,
        "usable_cores": cpu.usable_cores,
        "torch_threads": torch.get_num_threads(),
        "profile": config.profile,
        "device": config.name,
    }
    if config.device_type != "cpu":
        return facts
    facts["native_kernels"] = {
        name: str(s["variant"]) + (" (emulated)" if s.get("emulated") else "")
        for name, s in native_status(config).items()
    }
    if dtype in HALF_DTYPES:
        choice = select_half_gemm(dtype, profile=config.profile, profile_isa=cpu.isa)
        facts["gemm_many_rows"] = choice.variant.name
    return facts


def format_host(facts: dict[str, Any]) -> str:
    """``host AMD EPYC: ISA AVX2 (torch AVX2), 2 cores, 2 threads, profile cpu`` and, on a
    CPU device, a second line with the kernel variants."""
    isa = ", ".join(facts["isa"]) or "no vector ISA"
    line = (
        f"host {facts['cpu']}: ISA {isa} (torch {facts['torch_capability']}), "
        f"{facts['usable_cores']} cores, {facts['torch_threads']} threads, profile {facts['profile']}"
    )
    kernels = facts.get("native_kernels")
    if kernels is None:
        return f"{line}, device {facts['device']}"
    shown = ", ".join(f"{name} {v}" for name, v in kernels.items())
    gemm = facts.get("gemm_many_rows")
    return (
        line + f"\nkernels: {shown}" + (f"; GEMM of {UPCAST_MIN_ROWS}+ rows {gemm}" if gemm else "")
    )
