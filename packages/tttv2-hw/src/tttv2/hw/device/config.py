"""DeviceConfig: a typed description of what the code will run on, and the door to the
parameters chosen for it."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tttv2.core.errors import TTTv2Error, UnknownNameError
from tttv2.core.modes import ExecutionMode
from tttv2.core.specs import ModelSpec, ModuleSpec
from tttv2.hw.device.cpu import BF16_NATIVE_ISAS, CPUInfo, detect_cpu
from tttv2.hw.device.cuda import CUDA_PROFILES, CUDADeviceInfo, cuda_profile, detect_cuda
from tttv2.hw.device.mps import MPSInfo, detect_mps
from tttv2.hw.device.profiles import CPU_ISA_PROFILES, ENV_VAR, canonical_profile, profile_names
from tttv2.hw.device.tenstorrent import TT_PROFILES, TenstorrentInfo, detect_tenstorrent
from tttv2.hw.params.overrides import Rule, env_overrides, load_overrides
from tttv2.hw.params.resolve import resolve_params
from tttv2.hw.params.types import OpParams

if TYPE_CHECKING:
    from tttv2.hw.memory.planner import MemoryPlan


@dataclass(frozen=True)
class DeviceConfig:
    """The target device.

    ``device_type`` is ``"cpu"``, ``"cuda"``, ``"mps"`` or ``"tt"`` (what
    :func:`tttv2.hw.get_kernel` selects backends by); ``torch_device`` is where torch
    tensors go (the host for Tenstorrent). ``memory_*_bytes`` is the memory a model may use
    on the target: one GPU, the host RAM for CPU and MPS, every chip of a Tenstorrent mesh.
    ``profile`` names how it was chosen (``"cpu"`` when detected, ``"cuda:H100"`` when
    forced) and ``source`` says by whom (``"detected"``, ``"argument"``, ``"environment"``).
    """

    profile: str
    device_type: str
    name: str
    torch_device: str
    num_devices: int
    memory_total_bytes: int
    memory_available_bytes: int
    bf16_native: bool
    fp8_native: bool
    cpu: CPUInfo
    cuda: tuple[CUDADeviceInfo, ...] = ()
    mps: MPSInfo | None = None
    tenstorrent: TenstorrentInfo | None = None
    source: str = "detected"
    overrides: tuple[Rule, ...] = field(default=(), repr=False)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def auto_detect(
        cls,
        profile: str | None = None,
        *,
        params: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    ) -> DeviceConfig:
        """Describe the device this process will run on.

        ``profile`` (or the environment variable ``TTTV2_DEVICE_PROFILE``) forces a named
        profile instead (see :func:`tttv2.hw.device.profiles.profile_names`). Parameter
        overrides come from the file named by ``TTTV2_PARAMS`` and then from ``params``
        (a dict or a TOML/JSON path), which wins.
        """
        source = "argument"
        if profile is None and os.environ.get(ENV_VAR):
            profile, source = os.environ[ENV_VAR], "environment"
        config = cls._detect() if profile is None else cls._from_profile(profile, source)
        rules = [*env_overrides(), *load_overrides(params)]
        return dataclasses.replace(config, overrides=tuple(rules)) if rules else config

    @classmethod
    def _detect(cls) -> DeviceConfig:
        cpu = detect_cpu()
        tt = detect_tenstorrent()
        if tt is not None:
            return _tt_config(tt, cpu, f"tt:{tt.product}", "detected")
        gpus = detect_cuda()
        if gpus:
            return _cuda_config(gpus, cpu, "cuda", "detected")
        mps = detect_mps()
        if mps is not None:
            return _mps_config(mps, cpu, "detected")
        return _cpu_config(cpu, "cpu", "detected")

    @classmethod
    def _from_profile(cls, name: str, source: str) -> DeviceConfig:
        profile = canonical_profile(name)
        if profile is None:
            raise UnknownNameError("device profile", name, profile_names())
        kind, _, model = profile.partition(":")
        cpu = detect_cpu()
        if kind == "cpu":
            if model:
                isa = CPU_ISA_PROFILES[model]
                cpu = dataclasses.replace(
                    cpu, isa=isa, bf16_native=any(i in BF16_NATIVE_ISAS for i in isa)
                )
            return _cpu_config(cpu, profile, source)
        if kind == "cuda":
            gpus = (cuda_profile(model),) if model else detect_cuda()
            if not gpus:
                raise TTTv2Error(
                    "device profile 'cuda' needs a CUDA GPU and none is visible; name one of: "
                    + ", ".join(f"cuda:{g}" for g in CUDA_PROFILES)
                )
            return _cuda_config(gpus, cpu, profile, source)
        if kind == "mps":
            mps = detect_mps() or MPSInfo("Apple GPU (MPS)", cpu.memory_total_bytes, True)
            return _mps_config(mps, cpu, source)
        return _tt_config(TT_PROFILES[model], cpu, profile, source)

    def with_overrides(self, params: Mapping[str, Any] | str | os.PathLike[str]) -> DeviceConfig:
        """A copy whose parameter overrides also include ``params`` (winning over earlier ones)."""
        return dataclasses.replace(self, overrides=(*self.overrides, *load_overrides(params)))

    # -- derived figures the parameter tables refer to ("$name") ------------------------
    @property
    def preferred_dtype(self) -> str:
        """Compute dtype: bf16 where the device computes in bf16 natively."""
        if self.device_type == "cuda" and not self.bf16_native:
            return "float16"
        if self.device_type == "mps":
            return "bfloat16" if self.bf16_native else "float16"
        return "bfloat16" if self.bf16_native else "float32"

    @property
    def num_threads(self) -> int:
        """Intra-op CPU threads: the cores this process may use."""
        return self.cpu.usable_cores

    @property
    def prefill_len_cutoff(self) -> int | None:
        """Tenstorrent: prefill rows per matmul chunk for the architecture; None elsewhere."""
        return self.tenstorrent.arch.prefill_len_cutoff if self.tenstorrent else None

    # -- parameters and memory ------------------------------------------------------------
    def get_optimal_params(
        self, op: str, mode: ExecutionMode | str, spec: ModuleSpec | None = None
    ) -> OpParams:
        """Typed parameters for ``op`` (``"attention"``, ``"ffn"``, ``"norm"``, ``"rope"``,
        ``"moe"``, ``"lm_head"``, ``"kv_cache"``, ``"model"``) in execution ``mode``,
        adjusted for ``spec`` when given and for the user's overrides."""
        return resolve_params(self, op, mode, spec)

    def plan_memory(self, spec: ModelSpec, **kwargs: Any) -> MemoryPlan:
        """:func:`tttv2.hw.plan_memory` on this device (keyword arguments pass through)."""
        from tttv2.hw.memory.planner import plan_memory

        return plan_memory(spec, device=self, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description (overrides omitted)."""
        data = dataclasses.asdict(self)
        data.pop("overrides")
        data["preferred_dtype"] = self.preferred_dtype
        data["num_threads"] = self.num_threads
        return data


def _cpu_config(cpu: CPUInfo, profile: str, source: str) -> DeviceConfig:
    return DeviceConfig(
        profile=profile,
        device_type="cpu",
        name=cpu.model_name,
        torch_device="cpu",
        num_devices=1,
        memory_total_bytes=cpu.memory_total_bytes,
        memory_available_bytes=cpu.memory_available_bytes,
        bf16_native=cpu.bf16_native,
        fp8_native=False,
        cpu=cpu,
        source=source,
    )


def _cuda_config(
    gpus: tuple[CUDADeviceInfo, ...], cpu: CPUInfo, profile: str, source: str
) -> DeviceConfig:
    first = gpus[0]
    return DeviceConfig(
        profile=profile,
        device_type="cuda",
        name=first.name,
        torch_device=f"cuda:{first.index}",
        num_devices=len(gpus),
        memory_total_bytes=first.memory_total_bytes,
        memory_available_bytes=first.memory_free_bytes,
        bf16_native=first.bf16,
        fp8_native=first.fp8,
        cpu=cpu,
        cuda=gpus,
        source=source,
    )


def _mps_config(mps: MPSInfo, cpu: CPUInfo, source: str) -> DeviceConfig:
    return DeviceConfig(
        profile="mps",
        device_type="mps",
        name=mps.name,
        torch_device="mps",
        num_devices=1,
        memory_total_bytes=mps.memory_total_bytes,
        memory_available_bytes=min(cpu.memory_available_bytes, mps.memory_total_bytes),
        bf16_native=mps.bf16,
        fp8_native=False,
        cpu=cpu,
        mps=mps,
        source=source,
    )


def _tt_config(tt: TenstorrentInfo, cpu: CPUInfo, profile: str, source: str) -> DeviceConfig:
    return DeviceConfig(
        profile=profile,
        device_type="tt",
        name=f"Tenstorrent {tt.product} ({tt.arch.name}, {tt.num_chips} chip{'s' if tt.num_chips > 1 else ''})",
        torch_device="cpu",
        num_devices=tt.num_chips,
        memory_total_bytes=tt.memory_total_bytes,
        memory_available_bytes=tt.memory_total_bytes,
        bf16_native=True,
        fp8_native=True,  # 8-bit block float (bfloat8_b), quoted as "FP8" in product specs
        cpu=cpu,
        tenstorrent=tt,
        source=source,
    )
