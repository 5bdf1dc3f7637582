"""The memory planner against figures computed by hand from published model configs."""

from __future__ import annotations

import pytest
from hw_model_specs import decoder, llama31_8b, llama32_1b, mixtral_8x7b, qwen25_05b

from tttv2.hw import DeviceConfig, MemoryPlanError, count_params, plan_memory

GB = 10**9


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # embed 128256*4096 twice (untied) + 32 * (attn 41,943,040 + mlp 176,160,768 + norms 8,192) + 4,096
        (llama31_8b, 8_030_261_248),
        # tied: embedding once; 16 * (10,485,760 + 50,331,648 + 4,096) + 2,048
        (llama32_1b, 1_235_814_400),
        # qkv bias 896 + 2*128 per layer; tied
        (qwen25_05b, 494_032_768),
        # 8 experts of 176,160,768 + router 4096*8 per layer
        (mixtral_8x7b, 46_702_792_704),
    ],
    ids=["llama-3.1-8b", "llama-3.2-1b", "qwen2.5-0.5b", "mixtral-8x7b"],
)
def test_parameter_counts_match_published_sizes(spec, expected):
    assert count_params(spec()).total == expected


def test_llama_8b_bf16_on_24gb_device():
    device = DeviceConfig.auto_detect("cuda:L4")
    plan = plan_memory(
        llama31_8b(), device=device, memory_bytes=24 * GB, reserve_bytes=2 * GB, context_len=8192
    )
    assert plan.weight_dtype == "bfloat16" and plan.kv_dtype == "bfloat16"
    assert plan.weight_bytes == 16_060_522_496  # ~16.06 GB
    assert plan.kv_bytes_per_token == 2 * 32 * 8 * 128 * 2 == 131_072
    assert plan.block_size == 16 and plan.kv_bytes_per_block == 2_097_152
    # (24e9 - 16,060,522,496 - 2e9) // 2,097,152 = 2832 blocks = 45,312 tokens
    assert plan.kv_budget_bytes == 5_939_477_504
    assert plan.num_blocks == 2832 and plan.max_tokens == 45_312
    assert plan.max_batch == 5  # 512 blocks per 8192-token sequence
    assert plan.max_batch_at(2048) == 22
    assert plan.max_context_at(1) == 45_312
    assert "16.06 GB" in plan.summary()


def test_default_reserve_is_activations_plus_runtime_fraction():
    device = DeviceConfig.auto_detect("cuda:L4")
    spec = llama31_8b()
    plan = plan_memory(spec, device=device, memory_bytes=24 * GB)
    # chunk 8192 tokens * (4*4096 + 2*14336) * 2 bytes + 64 rows * 128256 * 4 + 5% of 24 GB
    expected = 8192 * (4 * 4096 + 2 * 14336) * 2 + 64 * 128256 * 4 + int(0.05 * 24 * GB)
    assert plan.reserve_bytes == expected
    assert plan.num_blocks == (24 * GB - plan.weight_bytes - expected) // 2_097_152


def test_weights_that_do_not_fit_name_the_sizes():
    device = DeviceConfig.auto_detect("tt:N150")
    with pytest.raises(
        MemoryPlanError, match=r"16\.06 GB .*8\.03B parameters in bfloat16.*12\.00 GB"
    ):
        plan_memory(
            llama31_8b(),
            device=device,
            memory_bytes=12 * GB,
            weight_dtype="bfloat16",
            reserve_bytes=0,
        )


def test_tenstorrent_block_float_weights_and_kv():
    """bfloat8_b stores 1088 bytes per 1024 values (one shared exponent per 16)."""
    device = DeviceConfig.auto_detect("tt:N300")
    plan = plan_memory(llama31_8b(), device=device, reserve_bytes=GB, weight_dtype="bfloat8_b")
    assert plan.weight_dtype == "bfloat8_b" and plan.block_size == 32
    assert plan.weight_bytes == -(-8_030_261_248 * 1088 // 1024)
    assert plan.kv_bytes_per_token == 131_072 // 2 * 1088 // 1024
    assert plan.memory_bytes == 2 * 12 * 2**30


def test_tenstorrent_profile_counts_the_performance_preset_packed():
    """tt profiles select the ``performance`` preset: bfloat4_b w1/w3 (576 B per 32x32
    tile), bfloat8_b wqkv/wo/w2/lm_head (1088 B per tile), bf16 embedding and norms.
    Llama-3.1-8B by hand: per layer wqkv 4096x6144 = 24576 tiles, wo 16384 tiles,
    w1 and w3 57344 tiles each, w2 57344 tiles, two norms of 4096; embedding and untied
    head 128256x4096 (head 128 x 4008 tiles)."""
    device = DeviceConfig.auto_detect("tt:N300")
    plan = plan_memory(llama31_8b(), device=device, reserve_bytes=GB)
    assert plan.weight_dtype == "precision performance"
    layer = (24576 + 16384 + 57344) * 1088 + 2 * 57344 * 576 + 2 * 4096 * 2
    expected = 32 * layer + 128256 * 4096 * 2 + 128 * 4008 * 1088 + 4096 * 2
    assert plan.weight_bytes == expected
    bfp8_everywhere = plan_memory(
        llama31_8b(), device=device, reserve_bytes=GB, weight_dtype="bfloat8_b"
    ).weight_bytes
    assert plan.weight_bytes < bfp8_everywhere


def test_sliding_window_and_tied_models_plan_on_cpu():
    spec = decoder(
        hidden=256,
        layers=2,
        heads=4,
        kv_heads=2,
        intermediate=512,
        vocab=1000,
        tied=True,
        softcap=30.0,
        max_seq_len=512,
    )
    plan = DeviceConfig.auto_detect("cpu:avx2").plan_memory(spec, memory_bytes=GB)
    assert plan.weight_dtype == "float32"
    assert plan.weight_bytes == count_params(spec).total * 4
    assert plan.kv_bytes_per_token == 2 * 2 * 2 * 64 * 4
    assert plan.max_batch == plan.num_blocks // (512 // 16)


def test_rejects_nonsense_sizes():
    with pytest.raises(ValueError, match="block_size"):
        plan_memory(llama32_1b(), device=DeviceConfig.auto_detect("cuda:H100"), block_size=-1)


def test_context_that_does_not_fit_names_the_longest_that_does():
    """24 GB - 16.06 GB weights - 2 GB reserve = 2832 blocks of 16 tokens (45,312 tokens)."""
    device = DeviceConfig.auto_detect("cuda:L4")
    with pytest.raises(
        MemoryPlanError,
        match=r"context_len=131072 needs 8192 blocks.*Longest context that fits: 45312",
    ):
        plan_memory(
            llama31_8b(),
            device=device,
            memory_bytes=24 * GB,
            reserve_bytes=2 * GB,
            context_len=131_072,
        )
    fits = plan_memory(
        llama31_8b(), device=device, memory_bytes=24 * GB, reserve_bytes=2 * GB, context_len=45_312
    )
    assert fits.max_batch == 1


def test_rejects_negative_reserve_and_empty_batches():
    device = DeviceConfig.auto_detect("cuda:H100")
    with pytest.raises(ValueError, match="reserve_bytes=-1"):
        plan_memory(llama32_1b(), device=device, reserve_bytes=-1)
    plan = plan_memory(llama32_1b(), device=device, context_len=8192)
    with pytest.raises(ValueError, match="batch=0"):
        plan.max_context_at(0)
    with pytest.raises(ValueError, match="context_len=0"):
        plan.max_batch_at(0)


def test_plan_follows_the_kv_cache_parameters_the_cache_reads():
    """tttv2-blocks' paged cache takes its block size and dtype from the ``kv_cache`` op, so an
    override there must move the plan too (it read the ``model`` op's copies)."""
    device = DeviceConfig.auto_detect(
        "cuda:L4", params={"kv_cache": {"kv_block_size": 32, "kv_cache_dtype": "float32"}}
    )
    plan = plan_memory(
        llama31_8b(), device=device, memory_bytes=24 * GB, reserve_bytes=2 * GB, context_len=8192
    )
    assert plan.block_size == 32 and plan.kv_dtype == "float32"
    assert plan.kv_bytes_per_token == 2 * 32 * 8 * 128 * 4
