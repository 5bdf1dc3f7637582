"""config.json -> ModelSpec: every field lands where it should, and the RoPE frequencies of
every scaling rule (old ``rope_scaling`` + ``rope_theta`` files and transformers-5
``rope_parameters`` files) equal the ones transformers computes from the same config."""

from __future__ import annotations

import copy

import pytest
import torch
from tttv2_llama3 import model_spec, rope_spec

from tttv2.blocks import rope_frequencies
from tttv2.core.errors import SpecError

BASE = {
    "architectures": ["LlamaForCausalLM"],
    "vocab_size": 300,
    "hidden_size": 64,
    "intermediate_size": 160,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "max_position_embeddings": 512,
}

SCALINGS = {
    "default": None,
    "linear": {"rope_type": "linear", "factor": 4.0},
    "dynamic": {"type": "dynamic", "factor": 2.0},  # the pre-"rope_type" spelling
    "llama3": {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 128,
    },
    "yarn": {
        "rope_type": "yarn",
        "factor": 4.0,
        "original_max_position_embeddings": 128,
        "beta_fast": 16.0,
    },
}


def test_llama31_8b_shape_maps_every_field():
    config = {
        **BASE,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "rope_scaling": SCALINGS["llama3"] | {"original_max_position_embeddings": 8192},
        "tie_word_embeddings": False,
    }
    spec = model_spec(config)
    layer = spec.layers[0]
    a, rope = layer.attention, layer.attention.rope
    assert spec.num_layers == 32 and spec.hidden_dim == 4096 and spec.vocab_size == 128256
    assert (a.num_heads, a.num_kv_heads, a.head_dim, a.qkv_bias, a.out_bias) == (
        32,
        8,
        128,
        False,
        False,
    )
    assert (rope.theta, rope.scaling, rope.factor, rope.original_max_position) == (
        500000.0,
        "llama3",
        8.0,
        8192,
    )
    assert (rope.low_freq_factor, rope.high_freq_factor, rope.rotary_dim) == (1.0, 4.0, 128)
    assert (
        layer.ffn.intermediate_dim == 14336 and layer.ffn.gated and layer.ffn.activation == "silu"
    )
    assert layer.attn_norm.eps == 1e-5 and spec.final_norm.norm_type == "rms"
    assert not spec.lm_head.tied and spec.max_seq_len == a.max_seq_len == 131072


def test_llama32_tied_and_explicit_head_dim_and_biases():
    config = BASE | {
        "tie_word_embeddings": True,
        "head_dim": 32,
        "attention_bias": True,
        "mlp_bias": True,
    }
    spec = model_spec(config)
    a = spec.layers[0].attention
    assert (
        spec.lm_head.tied
        and a.head_dim == 32
        and a.qkv_bias
        and a.out_bias
        and spec.layers[0].ffn.bias
    )


def hf_frequencies(config: dict, seq_len: int | None) -> tuple[torch.Tensor, float]:
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    hf = LlamaConfig(**config)
    kind = hf.rope_parameters["rope_type"]
    if kind == "default":
        return LlamaRotaryEmbedding.compute_default_rope_parameters(hf)
    return ROPE_INIT_FUNCTIONS[kind](hf, None, seq_len)


@pytest.mark.parametrize("layout", ["rope_scaling", "rope_parameters"])
@pytest.mark.parametrize("name", sorted(SCALINGS))
def test_rope_frequencies_equal_transformers(name, layout):
    # transformers writes "rope_type" into the dict it is given: each config gets its own copy,
    # or the outcome would depend on which case ran first in this worker.
    scaling = copy.deepcopy(SCALINGS[name])
    if layout == "rope_scaling":
        config = BASE | {"rope_theta": 250000.0} | ({"rope_scaling": scaling} if scaling else {})
    else:
        config = BASE | {
            "rope_parameters": (scaling or {"rope_type": "default"}) | {"rope_theta": 250000.0}
        }
    spec = rope_spec(config, head_dim=16)
    assert spec.theta == 250000.0 and spec.scaling == name
    for seq_len in (None, 1000):  # dynamic NTK changes past max_position_embeddings
        ours, our_scale = rope_frequencies(spec, seq_len)
        theirs, their_scale = hf_frequencies(config, seq_len)
        torch.testing.assert_close(ours, theirs.float(), rtol=1e-6, atol=0)
        assert our_scale == pytest.approx(their_scale)


def test_dynamic_scaling_extends_the_context():
    spec = model_spec(BASE | {"rope_scaling": SCALINGS["dynamic"]})
    assert spec.max_seq_len == 1024 and spec.layers[0].attention.rope.max_position == 512


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rope_scaling": {"rope_type": "longrope2"}}, "rope_scaling.rope_type"),
        (
            {"rope_scaling": {"rope_type": "llama3", "factor": 8.0}},
            "rope_scaling.low_freq_factor",
        ),
        ({"rope_scaling": {"rope_type": "linear"}}, "rope_scaling.factor"),
        ({"rope_parameters": {"rope_type": "linear"}}, "rope_parameters.factor"),
        ({"num_attention_heads": 0}, "num_attention_heads"),
        ({"num_hidden_layers": 2.0}, "num_hidden_layers"),
        ({"tie_word_embeddings": "yes"}, "tie_word_embeddings"),
        ({"hidden_act": "swishglu"}, "hidden_act"),
        ({"vocab_size": None}, "vocab_size"),
    ],
)
def test_bad_configs_name_the_field(change, field):
    config = {k: v for k, v in (BASE | change).items() if v is not None}
    with pytest.raises(SpecError, match=rf"LlamaConfig\.{field}="):
        model_spec(config)


def test_invalid_numbers_are_caught_by_the_specs():
    with pytest.raises(SpecError, match="num_kv_heads"):
        model_spec(BASE | {"num_key_value_heads": 3})


class Recording(dict):
    """A config that records every key read from it."""

    read: set[str] = set()

    def get(self, key, default=None):
        Recording.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        Recording.read.add(key)
        return super().__getitem__(key)


def test_readme_lists_exactly_the_config_keys_read(build):
    import re
    from pathlib import Path

    from tttv2.core.model_plugins import architecture_of

    Recording.read = set()
    for scaling in SCALINGS.values():
        config = Recording(BASE | ({"rope_scaling": scaling} if scaling else {}))
        model_spec(config)
        architecture_of(config)  # what tttv2's plugin lookup reads
    config = Recording(BASE | {"head_dim": 16})
    model_spec(config)
    from tttv2.blocks.hf_config import HFConfig

    cfg = HFConfig(config, "LlamaConfig")  # what load_hf_checkpoint reads besides the mapping
    cfg.token_ids("eos_token_id"), cfg.token_id("bos_token_id")
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    listed = re.search(r"<!-- config-keys -->(.*?)<!-- /config-keys -->", readme, re.S).group(1)
    assert set(re.findall(r"`([a-z_]+)`", listed)) == Recording.read


def test_fuzz_malformed_configs_raise_only_one_line_spec_errors():
    """Any JSON-like value under any key the mapping reads (and nested RoPE dicts): the
    loader's config -> spec step raises SpecError on one line, never another exception."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from tttv2.blocks.weights import spec_from_config

    leaf = (
        st.none() | st.booleans() | st.integers(-(2**66), 2**66) | st.floats() | st.text(max_size=6)
    )
    json = st.recursive(
        leaf,
        lambda x: st.lists(x, max_size=3) | st.dictionaries(st.text(max_size=6), x, max_size=3),
        max_leaves=8,
    )
    keys = [*BASE, "head_dim", "hidden_act", "rope_theta", "num_key_value_heads", "rms_norm_eps",
            "attention_bias", "mlp_bias", "tie_word_embeddings", "original_max_position_embeddings"]  # fmt: skip
    rope = st.fixed_dictionaries({"rope_type": st.sampled_from([*SCALINGS, "x"])}, optional={
        k: json for k in ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings", "rope_theta", "truncate")})  # fmt: skip
    configs = st.builds(
        lambda changes, r: {**BASE, **changes, **r},
        st.dictionaries(st.sampled_from(keys), json, max_size=4),
        st.fixed_dictionaries(
            {}, optional={"rope_scaling": rope | json, "rope_parameters": rope | json}
        ),
    )

    @settings(max_examples=200, deadline=None, database=None)
    @given(configs)
    def check(config):
        try:
            spec_from_config(config, model_spec, "LlamaConfig")
        except SpecError as exc:
            assert "\n" not in str(exc)

    check()
