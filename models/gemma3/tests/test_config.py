"""config.json -> spec, against what transformers' Gemma3TextConfig and Gemma3RotaryEmbedding
derive from the same file: each layer kind's RoPE in every spelling transformers reads, which
layers are local and their window, the class defaults, the keys transformers ignores, and
one-line refusals where transformers fails."""

from __future__ import annotations

import copy
import itertools
import re
from pathlib import Path

import pytest
import torch
from tttv2_model_gemma3 import model_spec

from tttv2.blocks.building_blocks.rope import rope_frequencies
from tttv2.blocks.hf_config import HFConfig, HFConfigError
from tttv2.core.model_plugins import architecture_of

BASE = {
    "architectures": ["Gemma3ForCausalLM"], "vocab_size": 300, "hidden_size": 64, "intermediate_size": 96,
    "num_hidden_layers": 6, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
    "max_position_embeddings": 512, "sliding_window": 8,
}  # fmt: skip
LINEAR8 = {"rope_type": "linear", "factor": 8.0}

ROPE_CASES = {
    "defaults": {},
    "rope_theta": {"rope_theta": 5000.0},
    "rope_local_base_freq": {"rope_local_base_freq": 100.0},
    "legacy-linear-global-only": {
        "rope_theta": 5000.0,
        "rope_local_base_freq": 100.0,
        "rope_scaling": LINEAR8,
    },
    "legacy-null-scaling": {"rope_scaling": None, "rope_theta": 5000.0},
    "legacy-old-type-key-ignored": {"rope_scaling": {"type": "linear", "factor": 8.0}},
    "legacy-theta-inside-scaling-wins": {
        "rope_scaling": {**LINEAR8, "rope_theta": 3.0},
        "rope_theta": 5.0,
    },
    "legacy-yarn": {
        "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}
    },
    "legacy-llama3": {
        "rope_scaling": {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
    },  # fmt: skip
    "nested": {
        "rope_parameters": {
            "full_attention": {**LINEAR8, "rope_theta": 1e4},
            "sliding_attention": {"rope_type": "default", "rope_theta": 50.0},
        },
    },  # fmt: skip
    "nested-global-only-old-type-key": {
        "rope_parameters": {"full_attention": {"type": "linear", "factor": 2.0}},
        "rope_theta": 9.0,
    },
    "nested-scaled-local": {
        "rope_parameters": {"sliding_attention": {"rope_type": "linear", "factor": 4.0}}
    },
    "nested-yarn-original-from-max-position": {
        "rope_parameters": {"full_attention": {"rope_type": "yarn", "factor": 4.0}}
    },
    "nested-theta-wins-over-top-level": {
        "rope_parameters": {
            "full_attention": {"rope_type": "default", "rope_theta": 7.0},
            "sliding_attention": {},
        },
        "rope_theta": 1.0,
        "rope_local_base_freq": 70.0,
    },  # fmt: skip
    "nested-plus-legacy-scaling-merged": {
        "rope_parameters": {"full_attention": {**LINEAR8}},
        "rope_scaling": {"factor": 4.0},
    },
    "flat-rope-parameters-ignored": {"rope_parameters": {**LINEAR8, "rope_theta": 123.0}},
}


def transformers_rope(config: dict) -> dict[str, tuple[torch.Tensor, float]]:
    """Each layer kind's (inv_freq, attention scaling) in transformers' Gemma 3."""
    from transformers import Gemma3TextConfig
    from transformers.models.gemma3.modeling_gemma3 import Gemma3RotaryEmbedding

    rotary = Gemma3RotaryEmbedding(
        Gemma3TextConfig.from_dict(copy.deepcopy(config))
    )  # it edits nested dicts
    return {
        k: (getattr(rotary, f"{k}_inv_freq"), getattr(rotary, f"{k}_attention_scaling"))
        for k in rotary.layer_types
    }


@pytest.mark.parametrize("extra", ROPE_CASES.values(), ids=ROPE_CASES.keys())
def test_each_layer_kind_rotates_as_transformers(extra):
    config = BASE | extra
    expected = transformers_rope(config)
    layers = model_spec(config).layers
    assert set(expected) == {"full_attention", "sliding_attention"}
    for layer in layers:
        kind = (
            "sliding_attention" if layer.attention.sliding_window is not None else "full_attention"
        )
        inv_freq, scaling = rope_frequencies(layer.attention.rope)
        torch.testing.assert_close(inv_freq, expected[kind][0], rtol=1e-6, atol=0)
        assert scaling == pytest.approx(expected[kind][1], rel=1e-6), kind


def test_the_global_layers_alone_are_scaled_and_the_bases_differ():
    """The numbers behind legacy-file (tests/conftest.py): base 100 local, 5000 * linear 8 global."""
    layers = model_spec(BASE | ROPE_CASES["legacy-linear-global-only"]).layers
    assert [layer.attention.rope.theta for layer in layers] == [100.0] * 5 + [5000.0]
    assert [layer.attention.rope.scaling for layer in layers] == ["default"] * 5 + ["linear"]


def test_rope_scaling_beside_rope_parameters_without_a_global_entry_is_refused():
    from transformers import Gemma3TextConfig

    config = BASE | {"rope_parameters": {"sliding_attention": {}}, "rope_scaling": LINEAR8}
    with pytest.raises(KeyError):  # transformers' own failure
        Gemma3TextConfig.from_dict(copy.deepcopy(config))
    with pytest.raises(HFConfigError, match="rope_scaling"):
        model_spec(config)


LAYER_TYPES_6 = ["full_attention", "sliding_attention", "sliding_attention"] * 2
LAYER_CASES = [
    {
        k: v
        for k, v in zip(
            ("num_hidden_layers", "sliding_window_pattern", "layer_types", "sliding_window"),
            c,
            strict=True,
        )
        if v != "-"
    }
    for c in itertools.product(
        [1, 6, 13], [1, 2, 6, "-"], [LAYER_TYPES_6, "-"], [7, 512, 4096, "-"]
    )
    if not (c[2] != "-" and c[0] != 6)
]


@pytest.mark.parametrize(
    "extra",
    LAYER_CASES,
    ids=lambda c: (
        ",".join(f"{k}={v}" for k, v in c.items() if k != "layer_types")
        + (",layer_types" if "layer_types" in c else "")
    ),
)
def test_local_layers_and_windows_are_the_ones_transformers_derives(extra):
    from transformers import Gemma3TextConfig

    config = {k: v for k, v in BASE.items() if k != "sliding_window"} | extra
    hf = Gemma3TextConfig.from_dict(copy.deepcopy(config))
    # a window as long as the context (512) attends to everything: no window, same output
    expected = [
        hf.sliding_window if t == "sliding_attention" and hf.sliding_window < 512 else None
        for t in hf.layer_types
    ]
    assert [layer.attention.sliding_window for layer in model_spec(config).layers] == expected


def test_absent_keys_take_gemma3_text_config_defaults():
    """head_dim 256 (not hidden / heads = 16), 4 KV heads, scores scaled by 256 ** -0.5,
    tied head, no logit cap, tanh GELU, 4096 window, every 6th layer global, sizes."""
    from transformers import Gemma3TextConfig

    hf = Gemma3TextConfig()
    spec = model_spec({"architectures": ["Gemma3ForCausalLM"]})
    a = spec.layers[0].attention
    assert (
        (a.head_dim, a.num_heads, a.num_kv_heads)
        == (hf.head_dim, hf.num_attention_heads, hf.num_key_value_heads)
        == (256, 8, 4)
    )
    assert (
        a.scale == hf.query_pre_attn_scalar**-0.5
        and a.qk_norm
        and a.qk_norm_unit_offset
        and a.qk_norm_eps == hf.rms_norm_eps
    )
    assert a.logit_softcap is None and not a.qkv_bias and not a.out_bias
    assert (spec.embedding.vocab_size, spec.embedding.hidden_dim, spec.max_seq_len) == (
        hf.vocab_size,
        hf.hidden_size,
        hf.max_position_embeddings,
    )
    assert spec.embedding.scale == hf.hidden_size**0.5
    assert (
        spec.lm_head.tied == hf.tie_word_embeddings
        and spec.lm_head.final_logit_softcap is hf.final_logit_softcapping is None
    )
    assert (
        spec.layers[0].ffn.activation == "gelu_tanh"
        and spec.layers[0].ffn.intermediate_dim == hf.intermediate_size
    )
    assert [layer.attention.sliding_window for layer in spec.layers] == [
        hf.sliding_window if t == "sliding_attention" else None for t in hf.layer_types
    ]
    assert len(spec.layers) == hf.num_hidden_layers == 26
    norms = {spec.final_norm} | {
        getattr(layer, n)
        for layer in spec.layers
        for n in ("attn_norm", "post_attn_norm", "ffn_norm", "post_ffn_norm")
    }
    assert {(n.unit_offset, n.eps) for n in norms} == {(True, hf.rms_norm_eps)}


def test_keys_transformers_ignores_do_not_change_the_spec():
    """attn_logit_softcapping: Gemma3Attention keeps it but never applies it (the parity tests
    run legacy-file with it set to 2.0); hidden_act: Gemma 3's MLP reads hidden_activation."""
    spec = model_spec(BASE)
    for extra in (
        {"attn_logit_softcapping": 2.0},
        {"hidden_act": "silu"},
        {"_sliding_window_pattern": 2},
    ):
        assert model_spec(BASE | extra) == spec, extra


def test_set_values_reach_the_spec():
    spec = model_spec(
        BASE
        | {
            "final_logit_softcapping": 15.0,
            "query_pre_attn_scalar": 32,
            "attention_bias": True,
            "tie_word_embeddings": False,
        }
    )
    a = spec.layers[0].attention
    assert spec.lm_head.final_logit_softcap == 15.0 and not spec.lm_head.tied
    assert a.scale == 32**-0.5 and a.qkv_bias and a.out_bias


@pytest.mark.parametrize(
    "extra, key",
    [
        ({"use_bidirectional_attention": True}, "use_bidirectional_attention"),
        ({"sliding_window": None}, "sliding_window"),
        ({"sliding_window_pattern": 0}, "sliding_window_pattern"),
        ({"layer_types": ["full_attention"]}, "layer_types"),
        ({"hidden_activation": "tanh"}, "hidden_activation"),
        (
            {"rope_parameters": {"full_attention": {"rope_type": "su"}}},
            "rope_parameters.full_attention.rope_type",
        ),
        ({"rope_scaling": {"rope_type": "linear"}}, "rope_parameters.full_attention.factor"),
        ({"final_logit_softcapping": 0}, "final_logit_softcapping"),
    ],
)
def test_what_transformers_cannot_run_is_refused_in_one_line(extra, key):
    with pytest.raises(HFConfigError, match=re.escape(key)) as info:
        model_spec(BASE | extra)
    assert "\n" not in str(info.value)


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


def test_readme_lists_exactly_the_config_keys_read():
    Recording.read = set()
    for extra in (
        {},
        {"layer_types": LAYER_TYPES_6},
        ROPE_CASES["legacy-linear-global-only"],
        ROPE_CASES["nested"],
    ):
        config = Recording(BASE | extra)
        model_spec(config)
        architecture_of(config)
        cfg = HFConfig(
            config, "Gemma3TextConfig"
        )  # what load_hf_checkpoint reads besides the mapping
        cfg.token_ids("eos_token_id"), cfg.token_id("bos_token_id")
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    listed = re.search(r"<!-- config-keys -->(.*?)<!-- /config-keys -->", readme, re.S).group(1)
    assert set(re.findall(r"`([a-z_]+)`", listed)) == Recording.read
