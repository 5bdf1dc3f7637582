"""Forced device profiles: argument, environment variable, errors."""

from __future__ import annotations

import pytest

from tttv2.core.errors import TTTv2Error, UnknownNameError
from tttv2.hw import DeviceConfig, profile_names

GIB = 1 << 30


@pytest.mark.parametrize(
    ("profile", "name", "cc", "sms", "gib", "bf16", "fp8"),
    [
        ("cuda:H100", "NVIDIA H100 80GB HBM3", (9, 0), 132, 80, True, True),
        ("cuda:A100", "NVIDIA A100-SXM4-80GB", (8, 0), 108, 80, True, False),
        ("cuda:T4", "Tesla T4", (7, 5), 40, 16, False, False),
    ],
)
def test_cuda_profiles(profile, name, cc, sms, gib, bf16, fp8):
    config = DeviceConfig.auto_detect(profile)
    assert (config.device_type, config.torch_device, config.num_devices) == ("cuda", "cuda:0", 1)
    gpu = config.cuda[0]
    assert (gpu.name, gpu.compute_capability, gpu.sm_count) == (name, cc, sms)
    assert config.memory_total_bytes == gib * GIB
    assert (config.bf16_native, config.fp8_native) == (bf16, fp8)
    assert config.preferred_dtype == ("bfloat16" if bf16 else "float16")
    assert config.source == "argument" and config.profile == profile


@pytest.mark.parametrize(
    ("profile", "arch", "chips", "gib_per_chip", "grid", "shard", "cutoff"),
    [
        ("tt:N150", "wormhole_b0", 1, 12, (8, 8), 8, 1024),
        ("tt:N300", "wormhole_b0", 2, 12, (8, 8), 8, 1024),
        ("tt:T3K", "wormhole_b0", 8, 12, (8, 8), 8, 1024),
        ("tt:Galaxy", "wormhole_b0", 32, 12, (8, 8), 8, 1024),
        ("tt:P100", "blackhole", 1, 28, (12, 10), 7, 512),
        ("tt:P150", "blackhole", 1, 32, (13, 10), 8, 512),
        ("tt:P300", "blackhole", 2, 32, (13, 10), 8, 512),
        ("tt:P150x4", "blackhole", 4, 32, (13, 10), 8, 512),
    ],
)
def test_tenstorrent_profiles(profile, arch, chips, gib_per_chip, grid, shard, cutoff):
    config = DeviceConfig.auto_detect(profile)
    tt = config.tenstorrent
    assert config.device_type == "tt" and config.num_devices == chips
    assert tt.arch.name == arch and tt.arch.tile_size == 32
    assert config.memory_total_bytes == chips * gib_per_chip * GIB
    assert tt.core_grid == grid and tt.dram_shard_grid_width == shard
    assert config.prefill_len_cutoff == cutoff
    assert config.preferred_dtype == "bfloat16"


def test_cpu_isa_profiles_set_bf16():
    assert DeviceConfig.auto_detect("cpu:avx512-bf16").preferred_dtype == "bfloat16"
    assert DeviceConfig.auto_detect("cpu:amx").cpu.isa[0] == "AMX"
    avx2 = DeviceConfig.auto_detect("cpu:avx2")
    assert not avx2.bf16_native and avx2.preferred_dtype == "float32"


def test_profile_names_are_case_insensitive():
    assert DeviceConfig.auto_detect("CUDA:h100").profile == "cuda:H100"
    assert DeviceConfig.auto_detect("tt:p150X4").profile == "tt:P150x4"


def test_environment_variable_forces_a_profile(monkeypatch):
    monkeypatch.setenv("TTTV2_DEVICE_PROFILE", "tt:N300")
    config = DeviceConfig.auto_detect()
    assert config.profile == "tt:N300" and config.source == "environment"
    assert DeviceConfig.auto_detect("cuda:L4").profile == "cuda:L4"  # the argument wins


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(UnknownNameError) as err:
        DeviceConfig.auto_detect("cuda:H900")
    message = str(err.value)
    for name in ("cuda:H100", "tt:N150", "tt:P150x8", "cpu:avx512-bf16", "mps"):
        assert name in message
    assert set(err.value.known) == set(profile_names())


def test_plain_cuda_profile_needs_a_gpu(monkeypatch):
    monkeypatch.setattr("tttv2.hw.device.config.detect_cuda", lambda: ())
    with pytest.raises(TTTv2Error, match="cuda:H100"):
        DeviceConfig.auto_detect("cuda")


def test_to_dict_is_json_safe():
    import json

    data = json.loads(json.dumps(DeviceConfig.auto_detect("tt:T3K").to_dict()))
    assert data["tenstorrent"]["num_chips"] == 8 and data["preferred_dtype"] == "bfloat16"
