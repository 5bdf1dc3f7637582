"""RoPE at real model configurations against Hugging Face's rotary modules: Phi-3 128k
LongRoPE with its published short/long factor lists (both regimes, switching at 4096),
Llama-3.1-8B's llama3 scaling and Qwen2.5's YaRN, at reduced lengths."""

from __future__ import annotations

import math

import torch
from phi3_longrope_factors import PHI3_LONG_FACTOR, PHI3_SHORT_FACTOR  # tests/shared
from transformers import LlamaConfig, Phi3Config, Qwen2Config
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
from transformers.models.phi3.modeling_phi3 import Phi3RotaryEmbedding
from transformers.models.phi3.modeling_phi3 import apply_rotary_pos_emb as phi3_apply
from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding

from tttv2.blocks import RotaryEmbedding
from tttv2.core import RopeSpec


def _hf_cos_sin(module, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    cos, sin = module(torch.zeros(1), positions[None])
    half = cos.shape[-1] // 2
    return cos[0, :, :half], sin[0, :, :half]


def test_phi3_longrope_short_and_long_regimes_equal_hugging_face() -> None:
    assert len(PHI3_LONG_FACTOR) == len(PHI3_SHORT_FACTOR) == 48
    config = Phi3Config(
        hidden_size=3072,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=131072,
        original_max_position_embeddings=4096,
        rope_scaling={
            "type": "longrope",
            "short_factor": PHI3_SHORT_FACTOR,
            "long_factor": PHI3_LONG_FACTOR,
        },
    )
    # HF derives factor = max_position / original_max_position when the config has none
    spec = RopeSpec(
        head_dim=96,
        max_position=131072,
        scaling="longrope",
        factor=131072 / 4096,
        original_max_position=4096,
        short_factor=PHI3_SHORT_FACTOR,
        long_factor=PHI3_LONG_FACTOR,
    )
    ours, hf = RotaryEmbedding(spec), Phi3RotaryEmbedding(config)
    assert hf.attention_scaling == math.sqrt(1 + math.log(32) / math.log(4096))
    short = torch.tensor([0, 1, 2, 3, 1000, 4093, 4094, 4095])  # longest sequence: exactly 4096
    long = torch.tensor([5, 4095, 4096, 4097, 4100])  # beyond 4096: long factors
    for positions in (short, long):
        mine = ours.cos_sin(positions)
        theirs = _hf_cos_sin(hf, positions)
        assert torch.equal(mine[0], theirs[0]) and torch.equal(mine[1], theirs[1])
    assert not torch.equal(
        ours.cos_sin(torch.tensor([5]), seq_len=4096)[0],
        ours.cos_sin(torch.tensor([5]), seq_len=4097)[0],
    )

    # rotating Phi-3's 32 query / key heads of 96 channels
    q, k = torch.randn(len(long), 32, 96), torch.randn(len(long), 32, 96)
    cos, sin = hf(q, long[None])
    hf_q, hf_k = phi3_apply(q.transpose(0, 1)[None], k.transpose(0, 1)[None], cos, sin)
    my_q, my_k = ours.apply(q, k, long)
    assert torch.equal(my_q, hf_q[0].transpose(0, 1)) and torch.equal(my_k, hf_k[0].transpose(0, 1))


def test_llama31_8b_rope_equals_hugging_face() -> None:
    rope_parameters = {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }
    config = LlamaConfig(
        hidden_size=4096,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=131072,
        rope_parameters=rope_parameters,
    )
    spec = RopeSpec(
        head_dim=128,
        theta=500000.0,
        max_position=131072,
        scaling="llama3",
        factor=8.0,
        original_max_position=8192,
        low_freq_factor=1.0,
        high_freq_factor=4.0,
    )
    positions = torch.tensor([0, 1, 17, 2047, 8191, 9000])
    for dtype in (torch.float32, torch.bfloat16):
        mine = RotaryEmbedding(spec).cos_sin(positions, dtype=dtype)
        cos, sin = LlamaRotaryEmbedding(config)(torch.zeros(1, dtype=dtype), positions[None])
        assert torch.equal(mine[0], cos[0, :, :64]) and torch.equal(mine[1], sin[0, :, :64])


def test_qwen25_yarn_equals_hugging_face() -> None:
    rope_parameters = {
        "rope_type": "yarn",
        "rope_theta": 1000000.0,
        "factor": 4.0,
        "original_max_position_embeddings": 32768,
    }
    config = Qwen2Config(
        hidden_size=3584,
        num_attention_heads=28,
        num_key_value_heads=4,
        max_position_embeddings=131072,
        rope_parameters=rope_parameters,
    )
    spec = RopeSpec(
        head_dim=128,
        theta=1000000.0,
        max_position=131072,
        scaling="yarn",
        factor=4.0,
        original_max_position=32768,
    )
    positions = torch.tensor([0, 3, 100, 4000])
    mine = RotaryEmbedding(spec).cos_sin(positions)
    theirs = _hf_cos_sin(Qwen2RotaryEmbedding(config), positions)
    assert torch.equal(mine[0], theirs[0]) and torch.equal(mine[1], theirs[1])
