"""Parameter tables per device and mode, spec adjustments, and errors."""

from __future__ import annotations

import dataclasses

import pytest
from hw_model_specs import decoder, llama31_8b, mixtral_8x7b

from tttv2.core import ExecutionMode
from tttv2.core.errors import TTTv2Error, UnknownNameError
from tttv2.core.specs import AttentionSpec, FeedForwardSpec, KVCacheSpec, LMHeadSpec, MoESpec
from tttv2.hw import (
    OPS,
    AttentionParams,
    DeviceConfig,
    FFNParams,
    KVCacheParams,
    ModelParams,
    OpParams,
    get_optimal_params,
)

MODES = [m.value for m in ExecutionMode.all()]


@pytest.mark.parametrize(
    "profile", ["cpu", "cpu:avx512-bf16", "cuda:H100", "cuda:T4", "mps", "tt:N150", "tt:P150"]
)
def test_every_op_and_mode_resolves_to_typed_frozen_params(profile):
    config = DeviceConfig.auto_detect(profile)
    for op in OPS:
        for mode in MODES:
            params = config.get_optimal_params(op, mode)
            assert isinstance(params, OpParams) and params.op == op and params.mode == mode
            assert params.device == config.profile
            with pytest.raises(dataclasses.FrozenInstanceError):
                params.num_threads = 1  # type: ignore[misc]


# (profile, mode) -> expected subset of ModelParams
EXPECTED = [
    (
        "cpu:avx512-bf16",
        "prefill",
        dict(
            compute_dtype="bfloat16",
            attention_kernel="sdpa",
            capture_graph=False,
            compile=False,
            fuse_qkv=True,
            fuse_gate_up=True,
            kv_block_size=16,
            prefill_chunk_size=2048,
        ),
    ),
    (
        "cpu:avx512-bf16",
        "decode",
        dict(
            compute_dtype="bfloat16",
            attention_kernel="paged_decode",
            capture_graph=False,
            kv_cache_dtype="bfloat16",
        ),
    ),
    (
        "cpu:avx2",
        "decode",
        dict(compute_dtype="float32", kv_cache_dtype="float32", capture_graph=False),
    ),
    ("cpu", "long_context", dict(prefill_chunk_size=1024, attention_kernel="sdpa")),
    (
        "cuda:H100",
        "decode",
        dict(
            compute_dtype="bfloat16",
            capture_graph=True,
            attention_kernel="paged_decode",
            decode_batch_size=64,
        ),
    ),
    ("cuda:H100", "prefill", dict(capture_graph=False, prefill_chunk_size=8192)),
    ("cuda:H100", "continuous_batch", dict(capture_graph=False, attention_kernel="paged_decode")),
    ("cuda:H100", "long_context", dict(prefill_chunk_size=4096)),
    ("cuda:T4", "prefill", dict(compute_dtype="float16")),
    (
        "tt:N150",
        "decode",
        dict(
            kv_block_size=32,
            kv_cache_dtype="bfloat8_b",
            weight_dtype="bfloat8_b",
            capture_graph=True,
            decode_batch_size=32,
        ),
    ),
    ("tt:P150", "speculative", dict(attention_kernel="sdpa", capture_graph=False)),
]


@pytest.mark.parametrize(("profile", "mode", "expected"), EXPECTED, ids=lambda v: str(v)[:20])
def test_model_parameter_table(profile, mode, expected):
    params = DeviceConfig.auto_detect(profile).get_optimal_params("model", mode)
    assert isinstance(params, ModelParams)
    assert {k: getattr(params, k) for k in expected} == expected


def test_cpu_threads_are_usable_cores():
    config = DeviceConfig.auto_detect("cpu")
    assert config.get_optimal_params("ffn", "decode").num_threads == config.cpu.usable_cores


def test_ffn_row_chunk_follows_the_tenstorrent_architecture():
    assert (
        DeviceConfig.auto_detect("tt:N300").get_optimal_params("ffn", "prefill").prefill_row_chunk
        == 1024
    )
    assert (
        DeviceConfig.auto_detect("tt:P300").get_optimal_params("ffn", "prefill").prefill_row_chunk
        == 512
    )
    assert (
        DeviceConfig.auto_detect("cuda:H100").get_optimal_params("ffn", "prefill").prefill_row_chunk
        is None
    )


def test_mode_accepts_enum_or_string():
    config = DeviceConfig.auto_detect("cuda:A100")
    assert config.get_optimal_params(
        "attention", ExecutionMode.DECODE
    ) == config.get_optimal_params("attention", "decode")


def test_spec_adjustments():
    config = DeviceConfig.auto_detect("cuda:H100")
    capped = AttentionSpec(hidden_dim=64, num_heads=4, logit_softcap=50.0, max_seq_len=1024)
    params = config.get_optimal_params("attention", "prefill", capped)
    assert isinstance(params, AttentionParams)
    assert params.kernel == "math" and params.prefill_chunk_size == 1024
    assert config.get_optimal_params("attention", "decode", capped).kernel == "paged_decode"
    plain = FeedForwardSpec(hidden_dim=64, intermediate_dim=128, gated=False, activation="gelu")
    ffn = config.get_optimal_params("ffn", "prefill", plain)
    assert isinstance(ffn, FFNParams) and ffn.fuse_gate_up is False
    small = MoESpec(
        hidden_dim=64,
        num_experts=4,
        top_k=2,
        expert=FeedForwardSpec(hidden_dim=64, intermediate_dim=32),
    )
    many = small.replace(num_experts=64)
    assert config.get_optimal_params("moe", "decode", small).expert_dispatch == "dense"
    assert config.get_optimal_params("moe", "decode", many).expert_dispatch == "sorted"
    kv = config.get_optimal_params(
        "kv_cache", "decode", KVCacheSpec(num_kv_heads=2, head_dim=16, max_seq_len=8)
    )
    assert isinstance(kv, KVCacheParams) and (kv.kv_block_size, kv.layout) == (8, "contiguous")
    head = config.get_optimal_params(
        "lm_head", "long_context", LMHeadSpec(hidden_dim=64, vocab_size=1000)
    )
    assert head.vocab_chunk_size is None  # smaller than one chunk


def test_model_spec_adjustments():
    config = DeviceConfig.auto_detect("cpu")
    assert config.get_optimal_params("model", "prefill", llama31_8b()).attention_kernel == "sdpa"
    capped = decoder(
        hidden=64,
        layers=2,
        heads=4,
        kv_heads=2,
        intermediate=128,
        vocab=100,
        tied=True,
        softcap=30.0,
        max_seq_len=512,
    )
    params = config.get_optimal_params("model", "prefill", capped)
    assert params.attention_kernel == "math" and params.prefill_chunk_size == 512
    assert config.get_optimal_params("model", "decode", mixtral_8x7b()).fuse_gate_up is True


def test_wrong_spec_kind_is_an_error():
    with pytest.raises(TTTv2Error, match="needs a FeedForwardSpec, got AttentionSpec"):
        DeviceConfig.auto_detect("cpu").get_optimal_params(
            "ffn", "decode", AttentionSpec(hidden_dim=8, num_heads=2)
        )


def test_unknown_op_and_mode_list_valid_names():
    config = DeviceConfig.auto_detect("cpu")
    with pytest.raises(
        UnknownNameError, match="attention, ffn, kv_cache, lm_head, model, moe, norm, rope"
    ):
        config.get_optimal_params("mlp", "decode")
    with pytest.raises(UnknownNameError, match="continuous_batch, decode"):
        config.get_optimal_params("ffn", "generate")


def test_module_level_function_uses_the_environment_profile(monkeypatch):
    monkeypatch.setenv("TTTV2_DEVICE_PROFILE", "cuda:H100")
    assert get_optimal_params("attention", "decode").capture_graph is True
    monkeypatch.setenv("TTTV2_DEVICE_PROFILE", "cpu:avx2")
    assert get_optimal_params("attention", "decode").capture_graph is False


def test_params_convert_dtypes_for_torch():
    import torch

    params = DeviceConfig.auto_detect("cuda:H100").get_optimal_params("attention", "decode")
    assert params.torch_dtype() is torch.bfloat16
    tt = DeviceConfig.auto_detect("tt:N150").get_optimal_params("attention", "decode")
    with pytest.raises(UnknownNameError, match="torch dtype"):
        tt.torch_dtype("kv_cache_dtype")  # bfloat8_b exists only on the device
    assert params.to_dict()["op"] == "attention"
