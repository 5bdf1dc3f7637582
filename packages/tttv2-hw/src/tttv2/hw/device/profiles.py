"""Named device profiles: the parameters any device would get, without that device.

Names are ``<device type>[:<model>]``, matched case-insensitively:

* ``cpu`` (this host), ``cpu:avx2``, ``cpu:avx512``, ``cpu:avx512-bf16``, ``cpu:amx``,
  ``cpu:generic`` -- this host's cores, memory and caches with the named vector ISA;
  ``cpu:generic`` has none the library uses (what a non-x86 host without native bf16
  gets: fp32 defaults, no native kernels, PyTorch's kernels everywhere);
* ``cuda:<GPU>`` for the GPUs in :data:`~tttv2.hw.device.cuda.CUDA_PROFILES`, and ``cuda``
  for the GPUs actually present;
* ``mps`` (Apple GPU, sized by this host's memory);
* ``tt:<product>`` for the systems in :data:`~tttv2.hw.device.tenstorrent.TT_PROFILES`.
"""

from __future__ import annotations

from tttv2.hw.device.cuda import CUDA_PROFILES
from tttv2.hw.device.tenstorrent import TT_PROFILES

#: ``cpu:<isa>`` profile suffix -> the ISA list it stands for (best first).
CPU_ISA_PROFILES: dict[str, tuple[str, ...]] = {
    "avx2": ("AVX2",),
    "avx512": ("AVX-512", "AVX2"),
    "avx512-bf16": ("AVX-512-BF16", "AVX-512", "AVX2"),
    "amx": ("AMX", "AVX-512-BF16", "AVX-512", "AVX2"),
    "generic": (),  # the fallback: no vector ISA any tttv2 kernel is built for
}

ENV_VAR = "TTTV2_DEVICE_PROFILE"


def profile_names() -> tuple[str, ...]:
    """Every name :meth:`DeviceConfig.auto_detect` accepts as ``profile``."""
    return (
        "cpu",
        *(f"cpu:{isa}" for isa in CPU_ISA_PROFILES),
        "cuda",
        *(f"cuda:{gpu}" for gpu in CUDA_PROFILES),
        "mps",
        *(f"tt:{product}" for product in TT_PROFILES),
    )


def canonical_profile(name: str) -> str | None:
    """The profile name as listed by :func:`profile_names`, or None when unknown."""
    wanted = name.strip().lower()
    return next((p for p in profile_names() if p.lower() == wanted), None)
