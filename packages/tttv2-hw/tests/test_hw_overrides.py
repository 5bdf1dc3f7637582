"""User overrides from dicts, TOML/JSON files and TTTV2_PARAMS."""

from __future__ import annotations

import json

import pytest

from tttv2.core.errors import UnknownNameError
from tttv2.hw import DeviceConfig, ParamsOverrideError


def test_dict_overrides_follow_precedence():
    config = DeviceConfig.auto_detect(
        "cpu",
        params={
            "defaults": {"num_threads": 7, "kv_block_size": 64},
            "decode": {"kv_block_size": 128},
            "attention": {"kv_block_size": 32, "decode": {"kv_block_size": 256}},
        },
    )
    assert config.get_optimal_params("ffn", "prefill").num_threads == 7
    assert config.get_optimal_params("kv_cache", "prefill").kv_block_size == 64
    assert config.get_optimal_params("kv_cache", "decode").kv_block_size == 128
    assert config.get_optimal_params("attention", "prefill").kv_block_size == 32
    assert config.get_optimal_params("attention", "decode").kv_block_size == 256


@pytest.mark.parametrize(
    "params",
    [
        {"model": {"attention_kernel": "math"}},
        {"model": {"decode": {"attention_kernel": "math"}}},
        {"defaults": {"attention_kernel": "math"}},
    ],
)
def test_model_attention_kernel_override_lands(params):
    """``ModelParams.attention_kernel`` reads the tables' ``kernel`` knob; overriding it by its
    field name must still change it (it was accepted and then silently dropped)."""
    config = DeviceConfig.auto_detect("cpu", params=params)
    assert config.get_optimal_params("model", "decode").attention_kernel == "math"
    assert config.get_optimal_params("attention", "decode").kernel == "paged_decode"


def test_device_scoped_overrides_apply_only_there():
    params = {
        "cuda": {"attention": {"prefill_chunk_size": 16384}},
        "attention": {"prefill_chunk_size": 512},
    }
    cuda = DeviceConfig.auto_detect("cuda:H100", params=params)
    cpu = DeviceConfig.auto_detect("cpu", params=params)
    assert cuda.get_optimal_params("attention", "prefill").prefill_chunk_size == 16384
    assert cpu.get_optimal_params("attention", "prefill").prefill_chunk_size == 512


def test_overrides_win_over_spec_rules_and_canonicalise_dtypes():
    config = DeviceConfig.auto_detect("cpu", params={"defaults": {"compute_dtype": "bf16"}})
    assert config.get_optimal_params("norm", "decode").compute_dtype == "bfloat16"


def test_toml_file_and_environment_variable(tmp_path, monkeypatch):
    env_file = tmp_path / "params.toml"
    env_file.write_text('[attention.decode]\nkernel = "math"\n[ffn]\nfuse_gate_up = false\n')
    monkeypatch.setenv("TTTV2_PARAMS", str(env_file))
    config = DeviceConfig.auto_detect("cpu")
    assert config.get_optimal_params("attention", "decode").kernel == "math"
    assert config.get_optimal_params("ffn", "prefill").fuse_gate_up is False
    # an explicit argument (here a JSON file) wins over the environment file
    arg_file = tmp_path / "mine.json"
    arg_file.write_text(json.dumps({"attention": {"decode": {"kernel": "paged_decode"}}}))
    config = DeviceConfig.auto_detect("cpu", params=arg_file)
    assert config.get_optimal_params("attention", "decode").kernel == "paged_decode"
    assert config.get_optimal_params("ffn", "prefill").fuse_gate_up is False


def test_with_overrides_layers_on_top():
    base = DeviceConfig.auto_detect("tt:N150")
    tuned = base.with_overrides({"decode": {"capture_graph": False}})
    assert base.get_optimal_params("model", "decode").capture_graph is True
    assert tuned.get_optimal_params("model", "decode").capture_graph is False


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        (
            {"atention": {"kv_block_size": 8}},
            ParamsOverrideError,
            "unknown override section 'atention'; valid: defaults, .*attention",
        ),
        (
            {"attention": {"fuse_gate_up": True}},
            UnknownNameError,
            "parameter in override 'attention'.*fuse_qkv",
        ),
        ({"defaults": {"threads": 2}}, UnknownNameError, "num_threads"),
        (
            {"defaults": {"kv_block_size": 0}},
            ParamsOverrideError,
            "kv_block_size=0: expected a positive integer",
        ),
        (
            {"defaults": {"fuse_qkv": "yes"}},
            ParamsOverrideError,
            "fuse_qkv='yes': expected true or false",
        ),
        (
            {"attention": {"kernel": "flash"}},
            ParamsOverrideError,
            "expected one of sdpa, math, paged_decode",
        ),
        (
            {"defaults": {"compute_dtype": "fp12"}},
            ParamsOverrideError,
            "unknown dtype 'fp12'.*bfloat16",
        ),
        ({"decode": 3}, ParamsOverrideError, "must be a table"),
        ({"cuda": {"cuda": {}}}, ParamsOverrideError, "unknown override section 'cuda.cuda'"),
    ],
)
def test_bad_overrides_are_explained(params, error, match):
    with pytest.raises(error, match=match):
        DeviceConfig.auto_detect("cpu", params=params)


def test_bad_environment_file_names_the_variable(tmp_path, monkeypatch):
    bad = tmp_path / "bad.toml"
    bad.write_text("[defaults]\nnum_threads = -1\n")
    monkeypatch.setenv("TTTV2_PARAMS", str(bad))
    with pytest.raises(ParamsOverrideError, match="TTTV2_PARAMS=.*bad.toml.*num_threads"):
        DeviceConfig.auto_detect("cpu")
    monkeypatch.setenv("TTTV2_PARAMS", str(tmp_path / "missing.toml"))
    with pytest.raises(ParamsOverrideError, match="cannot read parameter file"):
        DeviceConfig.auto_detect("cpu")
