"""Tiny random Qwen2-MoE and Qwen3-MoE checkpoints (tttv2.testing.hf), built once per session
and shared by xdist workers, and the variants every comparison runs on. Three layers, so
dense and sparse layers mix; every window (7 tokens) is shorter than the test prompts and
than a 16-token cache block."""

from __future__ import annotations

from typing import Any

import pytest

from tttv2.testing.model_kit import checkpoint_builder, shared_cache_dir, trained_checkpoint

#: Peaked logits (initializer_range 0.3) so greedy tokens, top-1 and the routers' choices
#: are not near-ties.
BASE: dict[str, Any] = {
    "initializer_range": 0.3, "max_position_embeddings": 256, "num_hidden_layers": 3, "num_experts": 8,
    "num_experts_per_tok": 2, "moe_intermediate_size": 48, "intermediate_size": 96,
}  # fmt: skip
QWEN2 = {"shared_expert_intermediate_size": 80}

VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    # name: (architecture, config overrides, build_tiny_checkpoint keyword arguments)
    "qwen2-dense-0-renorm-window-7": (
        "Qwen2MoeForCausalLM",
        QWEN2 | {"mlp_only_layers": [0], "norm_topk_prob": True, "use_sliding_window": True, "sliding_window": 7,
                 "max_window_layers": 2},
        {},
    ),
    "qwen2-step-2-tied-sharded": (
        "Qwen2MoeForCausalLM",
        QWEN2 | {"decoder_sparse_step": 2, "num_experts_per_tok": 3, "tie_word_embeddings": True},
        {"max_shard_size": "100KB"},
    ),
    "qwen3-dense-2-renorm-window-7-bias": (
        "Qwen3MoeForCausalLM",
        {"mlp_only_layers": [2], "norm_topk_prob": True, "use_sliding_window": True, "sliding_window": 7,
         "attention_bias": True},
        {},
    ),
    "qwen3-step-2-top-3": ("Qwen3MoeForCausalLM", {"decoder_sparse_step": 2, "num_experts_per_tok": 3}, {}),
}  # fmt: skip


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory):
    return shared_cache_dir(tmp_path_factory, "qwen-moe-checkpoints")


@pytest.fixture(scope="session")
def build(cache_dir):
    """``build(architecture, config_overrides=None, **kwargs) -> TinyCheckpoint``."""
    builders = {
        a: checkpoint_builder(cache_dir, a, BASE)
        for a in ("Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM")
    }
    return lambda architecture, overrides=None, **kwargs: builders[architecture](
        overrides, **kwargs
    )


def build_variant(build, name: str):
    architecture, overrides, kwargs = VARIANTS[name]
    return build(architecture, overrides, **kwargs)


@pytest.fixture(scope="session", params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest, build):
    return build_variant(build, request.param)


@pytest.fixture(
    scope="session", params=["qwen2-dense-0-renorm-window-7", "qwen3-dense-2-renorm-window-7-bias"]
)
def windowed(request: pytest.FixtureRequest, build):
    """One windowed, mixed dense/sparse checkpoint of each architecture."""
    return build_variant(build, request.param)


@pytest.fixture(scope="session")
def trained(windowed, cache_dir):
    """``(folder, token ids)``: ``windowed`` trained to memorise 64 tokens."""
    return trained_checkpoint(windowed, cache_dir)
