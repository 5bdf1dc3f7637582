"""config.json -> ModelSpec against what transformers itself builds from the same file:
which layers are sparse (its decoder layers, built on the meta device), each layer's window
(its config's ``layer_types`` / ``sliding_window`` after ``__post_init__``), the router's
numbers, shared expert, biases and QK-norm; README.md lists exactly the keys read."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import torch
from tttv2_model_qwen_moe import qwen2_moe_spec, qwen3_moe_spec

from tttv2.blocks.hf_config import HFConfig, HFConfigError
from tttv2.core.model_plugins import architecture_of
from tttv2.core.specs import MoESpec

BASE = {
    "vocab_size": 300, "hidden_size": 64, "intermediate_size": 96, "moe_intermediate_size": 32,
    "shared_expert_intermediate_size": 40, "num_hidden_layers": 4, "num_attention_heads": 4,
    "num_key_value_heads": 2, "max_position_embeddings": 512, "num_experts": 4, "num_experts_per_tok": 2,
}  # fmt: skip
SPECS = {"Qwen2MoeForCausalLM": qwen2_moe_spec, "Qwen3MoeForCausalLM": qwen3_moe_spec}


def hf_config(architecture: str, config: dict):
    from transformers import Qwen2MoeConfig, Qwen3MoeConfig

    return {"Qwen2MoeForCausalLM": Qwen2MoeConfig, "Qwen3MoeForCausalLM": Qwen3MoeConfig}[
        architecture
    ].from_dict(config)


def transformers_sparse_layers(architecture: str, config: dict) -> list[bool]:
    from transformers.models.qwen2_moe import modeling_qwen2_moe as q2
    from transformers.models.qwen3_moe import modeling_qwen3_moe as q3

    hf = hf_config(architecture, config)
    layer, sparse = {
        "Qwen2MoeForCausalLM": (q2.Qwen2MoeDecoderLayer, q2.Qwen2MoeSparseMoeBlock),
        "Qwen3MoeForCausalLM": (q3.Qwen3MoeDecoderLayer, q3.Qwen3MoeSparseMoeBlock),
    }[architecture]
    with torch.device("meta"):
        return [isinstance(layer(hf, i).mlp, sparse) for i in range(hf.num_hidden_layers)]


SPARSE_CASES = [
    {
        k: v
        for k, v in zip(("decoder_sparse_step", "mlp_only_layers", "num_experts"), c, strict=True)
        if v != "-"
    }
    for c in itertools.product([1, 2, 3, "-"], [[], [0, 3], [1], "-"], [4, 0, "-"])
]


@pytest.mark.parametrize("architecture", sorted(SPECS))
@pytest.mark.parametrize(
    "extra", SPARSE_CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "none"
)
def test_sparse_layers_are_the_ones_transformers_builds(architecture, extra):
    config = {
        k: v for k, v in BASE.items() if not (k == "num_experts" and "num_experts" in extra)
    } | extra
    if config.get("num_experts", 1) == 0:
        config["num_experts_per_tok"] = 1  # top-k is not read without sparse layers
    expected = transformers_sparse_layers(architecture, config)
    got = [isinstance(layer.ffn, MoESpec) for layer in SPECS[architecture](config).layers]
    assert got == expected


LAYER_TYPES = [None, ["sliding_attention", "full_attention", "full_attention", "sliding_attention"]]
WINDOW_CASES = [
    {
        k: v
        for k, v in zip(
            ("use_sliding_window", "sliding_window", "max_window_layers", "layer_types"),
            c,
            strict=True,
        )
        if v != "-"
    }
    for c in itertools.product(
        [True, False, "-"], [7, None, 512, "-"], [0, 3, "-"], LAYER_TYPES + ["-"]
    )
]


def transformers_windows(architecture: str, config: dict) -> list[int | None] | None:
    """Each layer's window as transformers' mask takes it, or ``None`` where it refuses the
    config (Qwen2-MoE: a sliding layer without a window)."""
    hf = hf_config(architecture, config)
    if (
        architecture == "Qwen3MoeForCausalLM"
    ):  # one mask for every layer, windowed iff sliding_window
        return [hf.sliding_window] * hf.num_hidden_layers
    if "sliding_attention" in hf.layer_types and not hf.sliding_window:
        return None
    return [hf.sliding_window if t == "sliding_attention" else None for t in hf.layer_types]


@pytest.mark.parametrize("architecture", sorted(SPECS))
@pytest.mark.parametrize(
    "extra", WINDOW_CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "none"
)
def test_layer_windows_are_the_ones_transformers_derives(architecture, extra):
    config = BASE | extra
    expected = transformers_windows(architecture, config)
    if expected is None:
        with pytest.raises(HFConfigError, match="layer_types"):
            SPECS[architecture](config)
        return
    expected = [None if w is not None and w >= 512 else w for w in expected]  # covers the context
    assert [
        layer.attention.sliding_window for layer in SPECS[architecture](config).layers
    ] == expected


@pytest.mark.parametrize("architecture", sorted(SPECS))
@pytest.mark.parametrize(
    "extra", [{}, {"norm_topk_prob": True}, {"num_experts_per_tok": 1}, {"hidden_act": "gelu"}]
)
def test_router_and_experts_are_transformers(architecture, extra):
    config = BASE | extra
    hf = hf_config(architecture, config)
    moe = SPECS[architecture](config).layers[0].ffn
    assert (moe.num_experts, moe.top_k, moe.renormalize) == (
        hf.num_experts,
        hf.num_experts_per_tok,
        hf.norm_topk_prob,
    )
    assert (moe.expert.intermediate_dim, moe.expert.activation) == (
        hf.moe_intermediate_size,
        hf.hidden_act,
    )
    if architecture == "Qwen2MoeForCausalLM":
        assert (
            moe.shared_expert.intermediate_dim == hf.shared_expert_intermediate_size
            and moe.shared_expert_gate
        )
    else:
        assert moe.shared_expert is None and not moe.shared_expert_gate


@pytest.mark.parametrize(
    "experts",
    [{"num_experts": 4}, {"num_local_experts": 4}, {"num_experts": 4, "num_local_experts": 6}],
)
def test_qwen3_moe_expert_count_as_qwen3moeconfig_resolves_its_alias(experts):
    config = {k: v for k, v in BASE.items() if k != "num_experts"} | experts
    hf = hf_config("Qwen3MoeForCausalLM", config)
    assert qwen3_moe_spec(config).layers[0].ffn.num_experts == hf.num_local_experts


@pytest.mark.parametrize("bias", [True, False, None])
def test_biases_head_dim_and_qk_norm_are_transformers(bias):
    q2 = BASE | ({"qkv_bias": bias} if bias is not None else {})
    (a2,) = {layer.attention for layer in qwen2_moe_spec(q2).layers}
    hf2 = hf_config("Qwen2MoeForCausalLM", q2)
    assert a2.qkv_bias == hf2.qkv_bias and not a2.out_bias and not a2.qk_norm and a2.head_dim == 16
    q3 = BASE | ({"attention_bias": bias} if bias is not None else {})
    (a3,) = {layer.attention for layer in qwen3_moe_spec(q3).layers}
    hf3 = hf_config("Qwen3MoeForCausalLM", q3)
    assert a3.qkv_bias == a3.out_bias == hf3.attention_bias
    assert a3.qk_norm and a3.qk_norm_eps == hf3.rms_norm_eps and a3.head_dim == 16
    assert qwen3_moe_spec(q3 | {"head_dim": 24}).layers[0].attention.head_dim == 24


def test_more_experts_per_token_than_experts_is_one_line():
    for spec in SPECS.values():
        with pytest.raises(HFConfigError, match="num_experts_per_tok"):
            spec(BASE | {"num_experts_per_tok": 5})
        with pytest.raises(HFConfigError, match="mlp_only_layers"):
            spec(BASE | {"mlp_only_layers": "0"})


class Recording(dict):
    read: set[str] = set()

    def get(self, key, default=None):
        Recording.read.add(key)
        return super().get(key, default)

    def __contains__(self, key):
        Recording.read.add(key)
        return super().__contains__(key)

    def __getitem__(self, key):
        Recording.read.add(key)
        return super().__getitem__(key)


@pytest.mark.parametrize("architecture", sorted(SPECS))
def test_readme_lists_exactly_the_config_keys_read(architecture):
    Recording.read = set()
    rope = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 128}
    extras = ({}, {"use_sliding_window": True, "sliding_window": 8, "head_dim": 16, "rope_scaling": rope},
              {"num_local_experts": 4, "mlp_only_layers": [1]})  # fmt: skip
    for extra in extras:
        config = Recording(BASE | {"architectures": [architecture]} | extra)
        SPECS[architecture](config)
        architecture_of(config)
        cfg = HFConfig(config)  # what load_hf_checkpoint reads besides the mapping
        cfg.token_ids("eos_token_id"), cfg.token_id("bos_token_id")
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = re.search(
        rf"<!-- config-keys {architecture} -->(.*?)<!-- /config-keys -->", readme, re.S
    ).group(1)
    assert set(re.findall(r"`([a-z_]+)`", section)) == Recording.read
