"""Host CPU description: usable cores, vector ISA, memory and caches.

Every reader takes the raw text (or a directory) so tests can feed descriptors of other
machines; :func:`detect_cpu` wires them to this machine's ``/proc`` and ``/sys`` files.
"""

from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import torch

#: ISA names, best first, and the /proc/cpuinfo flags (x86) or Features (Arm) proving them.
ISA_FLAGS: dict[str, tuple[str, ...]] = {
    "AMX": ("amx_tile", "amx_bf16"),
    "AVX-512-BF16": ("avx512_bf16",),
    "AVX-512": ("avx512f", "avx512bw", "avx512vl"),
    "AVX2": ("avx2", "fma"),
    "SVE": ("sve",),
    "NEON-BF16": ("bf16", "asimd"),
    "NEON": ("asimd",),
}
#: ISAs with native bf16 arithmetic (dot products without converting to fp32 first).
BF16_NATIVE_ISAS = frozenset({"AMX", "AVX-512-BF16", "NEON-BF16"})
#: torch.backends.cpu.get_cpu_capability() values that imply an ISA even without cpuinfo.
TORCH_CAPABILITY_ISA = {"AVX512": "AVX-512", "AVX2": "AVX2", "SVE256": "SVE"}


@dataclass(frozen=True)
class CPUInfo:
    """What the host CPU offers to PyTorch kernels."""

    model_name: str
    arch: str
    logical_cores: int
    usable_cores: int  # affinity mask and cgroup quota applied
    physical_cores: int | None
    torch_capability: str  # torch.backends.cpu.get_cpu_capability()
    isa: tuple[str, ...]  # e.g. ("AVX-512-BF16", "AVX-512", "AVX2"), best first
    bf16_native: bool
    memory_total_bytes: int
    memory_available_bytes: int
    caches: dict[str, int] = field(default_factory=dict)  # "L1d", "L1i", "L2", "L3" -> bytes


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """Model name and flag set of the first processor in a /proc/cpuinfo text."""
    name, flags = "", frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not name:
            name = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
    return name, flags


def isa_from_flags(flags: frozenset[str], torch_capability: str = "") -> tuple[str, ...]:
    """ISA levels proven by cpuinfo flags or by PyTorch's own capability report."""
    found = [isa for isa, needed in ISA_FLAGS.items() if all(f in flags for f in needed)]
    implied = TORCH_CAPABILITY_ISA.get(torch_capability.upper())
    if implied and implied not in found:
        found.append(implied)
    order = list(ISA_FLAGS)
    return tuple(sorted(found, key=order.index))


def parse_cache_dir(cache_dir: Path) -> dict[str, int]:
    """Cache sizes from a ``/sys/devices/system/cpu/cpu0/cache`` directory."""
    caches: dict[str, int] = {}
    if not cache_dir.is_dir():
        return caches
    for index in sorted(cache_dir.glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = parse_size((index / "size").read_text().strip())
        except (OSError, ValueError):
            continue
        suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
        caches[f"L{level}{suffix}"] = size
    return caches


def parse_size(text: str) -> int:
    """``"32K"``, ``"1M"``, ``"512"`` -> bytes."""
    text = text.strip().upper().removesuffix("B")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * scale


def cgroup_dirs(root: Path, controller: str, proc_cgroup: str | None = None) -> list[Path]:
    """Directories whose limits apply to this process for ``controller``, innermost first.

    Limits are hierarchical: the process's own cgroup (from ``/proc/self/cgroup``) and each
    ancestor up to the mount may set one, and the smallest wins. v2 (``0::/path``) lives at
    ``root``; v1 controllers at ``root/<controller>``. A path that is not visible under the
    mount (a container's namespaced view) falls back to the mount itself.
    """
    if proc_cgroup is None:
        try:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError:
            proc_cgroup = ""
    found: list[Path] = []
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        controllers, path = parts[1], parts[2].strip().lstrip("/")
        if controllers == "":
            base = root
        elif controller in controllers.split(","):
            base = root / controller
        else:
            continue
        here = base / path if path else base
        while here != base and not here.is_dir():
            here = here.parent
        while True:
            found.append(here)
            if here == base:
                break
            here = here.parent
    for base in (root, root / controller):  # no /proc/self/cgroup, or nothing named there
        if base not in found:
            found.append(base)
    return found


def _cpu_quota_in(directory: Path) -> int | None:
    """Whole CPUs a v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us`` in ``directory`` allows."""
    try:
        v2 = directory / "cpu.max"
        if v2.is_file():
            parts = v2.read_text().split()
            if not parts or parts[0] == "max":
                return None
            period = int(parts[1]) if len(parts) > 1 else 100000
            return max(1, math.ceil(int(parts[0]) / period))
        quota_file, period_file = directory / "cpu.cfs_quota_us", directory / "cpu.cfs_period_us"
        if quota_file.is_file() and period_file.is_file():
            quota, period = int(quota_file.read_text()), int(period_file.read_text())
            return None if quota <= 0 else max(1, math.ceil(quota / period))
    except (OSError, ValueError):
        return None
    return None


def _memory_limit_in(directory: Path) -> int | None:
    for path in (directory / "memory.max", directory / "memory.limit_in_bytes"):
        try:
            text = path.read_text().strip()
            limit = None if text == "max" else int(text)
        except (OSError, ValueError):
            continue
        return None if limit is None or limit >= 1 << 60 else limit
    return None


def cgroup_cpu_limit(
    root: Path = Path("/sys/fs/cgroup"), proc_cgroup: str | None = None
) -> int | None:
    """Whole CPUs allowed by the tightest cgroup quota over this process's cgroup and its
    ancestors (v2 ``cpu.max`` or v1 ``cfs_quota_us``); None when unlimited."""
    limits = [
        q for d in cgroup_dirs(root, "cpu", proc_cgroup) if (q := _cpu_quota_in(d)) is not None
    ]
    return min(limits) if limits else None


def cgroup_memory_limit(
    root: Path = Path("/sys/fs/cgroup"), proc_cgroup: str | None = None
) -> int | None:
    """Memory limit in bytes: the tightest over this process's cgroup and its ancestors
    (v2 ``memory.max`` or v1 ``memory.limit_in_bytes``); None when unlimited."""
    limits = [
        m
        for d in cgroup_dirs(root, "memory", proc_cgroup)
        if (m := _memory_limit_in(d)) is not None
    ]
    return min(limits) if limits else None


def usable_cores() -> int:
    """Cores this process may run on: affinity mask, capped by a cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    return min(cores, limit) if limit else cores


def detect_cpu() -> CPUInfo:
    """Describe this machine's CPU."""
    try:
        name, flags = parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:  # pragma: no cover - not Linux
        name, flags = "", frozenset()
    capability = torch.backends.cpu.get_cpu_capability()
    isa = isa_from_flags(flags, capability)
    mem = psutil.virtual_memory()
    limit = cgroup_memory_limit()
    total = min(mem.total, limit) if limit else mem.total
    return CPUInfo(
        model_name=name or platform.processor() or "unknown CPU",
        arch=platform.machine(),
        logical_cores=os.cpu_count() or 1,
        usable_cores=usable_cores(),
        physical_cores=psutil.cpu_count(logical=False),
        torch_capability=capability,
        isa=isa,
        bf16_native=any(i in BF16_NATIVE_ISAS for i in isa),
        memory_total_bytes=total,
        memory_available_bytes=min(mem.available, total),
        caches=parse_cache_dir(Path("/sys/devices/system/cpu/cpu0/cache")),
    )
