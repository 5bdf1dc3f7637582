"""Detection on this machine, and the parsers fed with descriptors of other machines."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import torch

from tttv2.hw import DeviceConfig
from tttv2.hw.device import cpu as cpu_mod
from tttv2.hw.device.cuda import CUDADeviceInfo
from tttv2.hw.device.tenstorrent import BLACKHOLE, WORMHOLE, describe_cluster, detect_tenstorrent

SAPPHIRE_RAPIDS = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse avx avx2 fma avx512f avx512bw avx512vl avx512_bf16 amx_tile amx_bf16 amx_int8
"""
GRAVITON3 = """processor\t: 0
Features\t: fp asimd evtstrm aes sha1 sve bf16 i8mm
CPU implementer\t: 0x41
"""


def test_detects_this_cpu():
    config = DeviceConfig.auto_detect("cpu")
    cpu = config.cpu
    assert config.device_type == "cpu" and config.torch_device == "cpu"
    assert 1 <= cpu.usable_cores <= cpu.logical_cores == os.cpu_count()
    if hasattr(os, "sched_getaffinity"):
        assert cpu.usable_cores <= len(os.sched_getaffinity(0))
    assert cpu.torch_capability == torch.backends.cpu.get_cpu_capability()
    _, flags = cpu_mod.parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    assert ("AVX2" in cpu.isa) == (
        {"avx2", "fma"} <= flags or cpu.torch_capability in ("AVX2", "AVX512")
    )
    assert cpu.bf16_native == (
        "avx512_bf16" in flags or "amx_bf16" in flags or {"bf16", "asimd"} <= flags
    )
    assert 0 < cpu.memory_available_bytes <= cpu.memory_total_bytes
    assert config.num_threads == cpu.usable_cores
    assert config.preferred_dtype == ("bfloat16" if cpu.bf16_native else "float32")
    if Path("/sys/devices/system/cpu/cpu0/cache").is_dir():
        assert all(size > 0 for size in cpu.caches.values()) and cpu.caches


def test_auto_detect_without_accelerators_is_cpu(monkeypatch):
    monkeypatch.delenv("TTTV2_DEVICE_PROFILE", raising=False)
    monkeypatch.setattr("tttv2.hw.device.config.detect_tenstorrent", lambda: None)
    monkeypatch.setattr("tttv2.hw.device.config.detect_cuda", lambda: ())
    monkeypatch.setattr("tttv2.hw.device.config.detect_mps", lambda: None)
    config = DeviceConfig.auto_detect()
    assert config.profile == "cpu" and config.source == "detected"


def test_isa_from_x86_and_arm_flags():
    _, flags = cpu_mod.parse_cpuinfo(SAPPHIRE_RAPIDS)
    assert cpu_mod.isa_from_flags(flags) == ("AMX", "AVX-512-BF16", "AVX-512", "AVX2")
    name, flags = cpu_mod.parse_cpuinfo(GRAVITON3)
    assert cpu_mod.isa_from_flags(flags) == ("SVE", "NEON-BF16", "NEON")
    # PyTorch's own report counts even when cpuinfo is unreadable
    assert cpu_mod.isa_from_flags(frozenset(), "AVX512") == ("AVX-512",)


def test_cache_and_cgroup_readers(tmp_path):
    for i, (level, kind, size) in enumerate(
        [
            (1, "Data", "48K"),
            (1, "Instruction", "32K"),
            (2, "Unified", "2048K"),
            (3, "Unified", "105M"),
        ]
    ):
        d = tmp_path / "cache" / f"index{i}"
        d.mkdir(parents=True)
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    assert cpu_mod.parse_cache_dir(tmp_path / "cache") == {
        "L1d": 48 << 10,
        "L1i": 32 << 10,
        "L2": 2 << 20,
        "L3": 105 << 20,
    }
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")
    (v2 / "memory.max").write_text("8589934592\n")
    assert cpu_mod.cgroup_cpu_limit(v2) == 2
    assert cpu_mod.cgroup_memory_limit(v2) == 8 << 30
    (v2 / "cpu.max").write_text("max 100000\n")
    (v2 / "memory.max").write_text("max\n")
    assert cpu_mod.cgroup_cpu_limit(v2) is None and cpu_mod.cgroup_memory_limit(v2) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("400000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert cpu_mod.cgroup_cpu_limit(v1) == 4


def test_cuda_from_fake_properties():
    props = SimpleNamespace(
        name="NVIDIA H100 80GB HBM3",
        major=9,
        minor=0,
        multi_processor_count=132,
        total_memory=80 << 30,
    )
    gpu = CUDADeviceInfo.from_properties(0, props, free_bytes=79 << 30)
    assert gpu.bf16 and gpu.fp8 and gpu.sm_count == 132 and gpu.memory_free_bytes == 79 << 30
    t4 = CUDADeviceInfo.from_properties(
        1,
        SimpleNamespace(
            name="T4", major=7, minor=5, multi_processor_count=40, total_memory=16 << 30
        ),
    )
    assert not t4.bf16 and not t4.fp8


def _fake_ttnn(cluster: str, num_devices: int | None = None):
    ns = SimpleNamespace(
        cluster=SimpleNamespace(get_cluster_type=lambda: SimpleNamespace(name=cluster))
    )
    if num_devices is not None:
        ns.get_num_devices = lambda: num_devices
    return ns


def test_tenstorrent_from_fake_ttnn():
    n300 = describe_cluster(_fake_ttnn("N300", 2))
    assert n300.product == "N300" and n300.arch is WORMHOLE and n300.num_chips == 2
    assert n300.memory_total_bytes == 24 << 30 and n300.core_grid == (8, 8)
    box = detect_tenstorrent(_fake_ttnn("P150_X4"))
    assert box.product == "P150x4" and box.arch is BLACKHOLE and box.num_chips == 4
    assert box.arch.prefill_len_cutoff == 512 and box.dram_shard_grid_width == 8
    galaxy = describe_cluster(_fake_ttnn("TG", 32))
    assert galaxy.product == "Galaxy" and galaxy.mesh_shape == (8, 4)
    partial = describe_cluster(_fake_ttnn("T3K", 4))  # a box with 4 chips visible
    assert partial.num_chips == 4 and partial.memory_total_bytes == 4 * (12 << 30)
    assert describe_cluster(_fake_ttnn("GRAYSKULL")) is None


def test_tenstorrent_detection_errors_mean_no_device():
    def broken():
        raise RuntimeError("no chips")

    assert (
        describe_cluster(SimpleNamespace(cluster=SimpleNamespace(get_cluster_type=broken))) is None
    )


def test_detected_tenstorrent_becomes_the_target(monkeypatch):
    monkeypatch.delenv("TTTV2_DEVICE_PROFILE", raising=False)
    monkeypatch.setattr(
        "tttv2.hw.device.config.detect_tenstorrent", lambda: describe_cluster(_fake_ttnn("P150", 1))
    )
    config = DeviceConfig.auto_detect()
    assert (
        config.profile == "tt:P150" and config.device_type == "tt" and config.source == "detected"
    )
    assert config.prefill_len_cutoff == 512


def test_cgroup_limits_are_read_where_this_process_lives(tmp_path):
    """A v1 machine whose memory cgroup is /process_api/<id> (as this one): the limit set on
    the process's own cgroup counts, an ancestor's tighter CPU quota wins, unrelated
    controllers' lines are ignored, and paths hidden by a namespace fall back to the mount."""
    proc = "4:memory:/process_api/abc\n3:cpu,cpuacct:/jobs/one\n2:pids:/elsewhere\n"
    own = tmp_path / "memory" / "process_api" / "abc"
    own.mkdir(parents=True)
    (own / "memory.limit_in_bytes").write_text("4294967296\n")
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text(
        str(1 << 62)
    )  # unlimited at the root
    cpu_own = tmp_path / "cpu" / "jobs" / "one"
    cpu_own.mkdir(parents=True)
    (cpu_own / "cpu.cfs_quota_us").write_text("-1")
    (cpu_own / "cpu.cfs_period_us").write_text("100000")
    (cpu_own.parent / "cpu.cfs_quota_us").write_text("300000")
    (cpu_own.parent / "cpu.cfs_period_us").write_text("100000")
    assert cpu_mod.cgroup_memory_limit(tmp_path, proc) == 4 << 30
    assert cpu_mod.cgroup_cpu_limit(tmp_path, proc) == 3
    # v2: the process's own cgroup sets cpu.max; a sibling's tighter limit does not apply
    v2 = tmp_path / "v2"
    (v2 / "app").mkdir(parents=True)
    (v2 / "other").mkdir()
    (v2 / "app" / "cpu.max").write_text("200000 100000\n")
    (v2 / "other" / "cpu.max").write_text("100000 100000\n")
    assert cpu_mod.cgroup_cpu_limit(v2, "0::/app\n") == 2
    assert cpu_mod.cgroup_cpu_limit(v2, "0::/hidden/by/namespace\n") is None


def test_detected_gpus_become_the_target(monkeypatch):
    """Two visible CUDA GPUs: the first is the target (memory and dtypes per device), all are counted."""
    monkeypatch.delenv("TTTV2_DEVICE_PROFILE", raising=False)
    props = SimpleNamespace(
        name="NVIDIA L4", major=8, minor=9, multi_processor_count=58, total_memory=24 << 30
    )
    gpus = tuple(
        CUDADeviceInfo.from_properties(i, props, free_bytes=(20 - i) << 30) for i in range(2)
    )
    monkeypatch.setattr("tttv2.hw.device.config.detect_tenstorrent", lambda: None)
    monkeypatch.setattr("tttv2.hw.device.config.detect_cuda", lambda: gpus)
    config = DeviceConfig.auto_detect()
    assert (config.profile, config.device_type, config.source) == ("cuda", "cuda", "detected")
    assert config.num_devices == 2 and config.torch_device == "cuda:0"
    assert config.memory_available_bytes == 20 << 30 and config.bf16_native and config.fp8_native
    assert config.get_optimal_params("attention", "decode").kernel == "paged_decode"


def test_detected_mps_becomes_the_target(monkeypatch):
    monkeypatch.delenv("TTTV2_DEVICE_PROFILE", raising=False)
    monkeypatch.setattr("tttv2.hw.device.config.detect_tenstorrent", lambda: None)
    monkeypatch.setattr("tttv2.hw.device.config.detect_cuda", lambda: ())
    monkeypatch.setattr("tttv2.hw.device.mps.mps_available", lambda: True)
    monkeypatch.setattr(
        "tttv2.hw.device.mps.platform.mac_ver", lambda: ("13.6.1", ("", "", ""), "arm64")
    )
    config = DeviceConfig.auto_detect()
    assert (config.profile, config.device_type, config.torch_device) == ("mps", "mps", "mps")
    assert config.mps is not None and not config.mps.bf16  # bf16 on MPS needs macOS 14
    assert config.memory_available_bytes <= config.memory_total_bytes
