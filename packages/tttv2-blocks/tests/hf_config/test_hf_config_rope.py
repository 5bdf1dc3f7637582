"""read_rope against transformers' own RoPE code (modeling_rope_utils) for every spelling:
rope_scaling with type / rope_type, rope_parameters, rope_theta top level or inside, and
partial_rotary_factor read only for architectures that rotate part of each head."""

from __future__ import annotations

import pytest
import torch

from tttv2.blocks import rope_frequencies
from tttv2.blocks.hf_config import HFConfig, HFConfigError, read_rope

transformers = pytest.importorskip("transformers")

BASE = {"vocab_size": 300, "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 1,
        "num_attention_heads": 4, "max_position_embeddings": 512}  # fmt: skip
LLAMA3 = {
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 128,
}
YARN = {"factor": 4.0, "original_max_position_embeddings": 128, "beta_fast": 16.0}
SPELLINGS = {
    "default-top-theta": {"rope_theta": 250000.0},
    "scaling-type": {"rope_theta": 5000.0, "rope_scaling": {"type": "linear", "factor": 4.0}},
    "scaling-rope_type": {"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}},
    "parameters-theta-inside": {
        "rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, **LLAMA3}
    },
    "parameters-yarn": {"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, **YARN}},
    "inside-wins": {
        "rope_theta": 7.0,
        "rope_parameters": {"rope_type": "default", "rope_theta": 5e5},
    },
    # a top-level partial_rotary_factor: Llama's default rope ignores it
    "partial-default-ignored": {"partial_rotary_factor": 0.5},
}
#: For an architecture that rotates part of each head (partial_rotary=True), transformers'
#: scaled rules read the factor at top level or inside.
PARTIAL = {
    "partial-linear-top": {
        "partial_rotary_factor": 0.5,
        "rope_scaling": {"rope_type": "linear", "factor": 2.0},
    },
    "partial-yarn-inside": {
        "rope_parameters": {"rope_type": "yarn", "partial_rotary_factor": 0.5, **YARN}
    },
}


def transformers_frequencies(config: dict, seq_len: int | None):
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    hf = LlamaConfig(**config)
    kind = hf.rope_parameters["rope_type"]
    if kind == "default":
        return LlamaRotaryEmbedding.compute_default_rope_parameters(hf)
    return ROPE_INIT_FUNCTIONS[kind](hf, None, seq_len)


@pytest.mark.parametrize("name", sorted(SPELLINGS) + sorted(PARTIAL))
def test_frequencies_equal_transformers_llama(name):
    config = BASE | SPELLINGS.get(name, PARTIAL.get(name))
    spec = read_rope(
        HFConfig(config, "C"), head_dim=16, max_position=512, partial_rotary=name in PARTIAL
    )
    for seq_len in (None, 1000):
        ours, our_scale = rope_frequencies(spec, seq_len)
        theirs, their_scale = transformers_frequencies(config, seq_len)
        assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
        torch.testing.assert_close(ours, theirs.float(), rtol=1e-6, atol=0)
        assert our_scale == pytest.approx(their_scale)


def test_partial_rotary_is_the_architectures_choice():
    for rope in ({}, {"rope_scaling": {"rope_type": "linear", "factor": 2.0}}):
        cfg = HFConfig(BASE | {"partial_rotary_factor": 0.25} | rope, "X")
        assert read_rope(cfg, 16, 512).rotary_dim == 16
        assert read_rope(cfg, 16, 512, partial_rotary=True).rotary_dim == 4


def test_nested_per_layer_type_parameters():
    config = BASE | {"rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 1e6},
                                         "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}}  # fmt: skip
    cfg = HFConfig(config, "X")
    assert read_rope(cfg, 16, 512, layer_type="full_attention").theta == 1e6
    assert read_rope(cfg, 16, 512, layer_type="sliding_attention").theta == 1e4
    with pytest.raises(HFConfigError, match="an entry for 'chunked_attention'"):
        read_rope(cfg, 16, 512, layer_type="chunked_attention")


@pytest.mark.parametrize(
    ("rope", "field"),
    [({"rope_scaling": {"rope_type": "longrope2"}}, "rope_scaling.rope_type"),
     ({"rope_scaling": {"rope_type": "linear"}}, "rope_scaling.factor"),
     ({"rope_parameters": {"rope_type": "llama3", "factor": 8.0}}, "rope_parameters.low_freq_factor"),
     ({"rope_parameters": {"rope_type": "yarn", "truncate": "no"}}, "rope_parameters.truncate"),
     ({"rope_parameters": {"rope_type": "longrope", "short_factor": [1.0]}}, "rope_parameters.short_factor"),
     ({"rope_scaling": [1, 2]}, "rope_scaling"), ({"rope_theta": "big"}, "rope_theta"),
     ({"rope_parameters": {"rope_theta": -1.0}}, "rope_parameters.rope_theta")],
)  # fmt: skip
def test_malformed_rope_fields_are_named(rope, field):
    with pytest.raises(HFConfigError, match=rf"^X\.{field}="):
        read_rope(HFConfig(BASE | rope, "X"), 16, 512)
