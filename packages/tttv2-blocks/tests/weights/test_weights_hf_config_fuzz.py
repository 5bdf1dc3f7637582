"""Fuzz target for the config -> spec mapping: any JSON-like config (malformed sizes, ids,
RoPE parameters in every spelling, layer types) fed through a mapping composed from
tttv2.blocks.hf_config's readers raises only SpecError, on one line, never another
exception. Bounded (max_examples) so CI runs it every time."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from toy_hf_mapping import spec_of

from tttv2.blocks.hf_config import HFConfig
from tttv2.blocks.weights import spec_from_config
from tttv2.core.errors import SpecError


def composed_mapping(config):
    spec = spec_of(config)
    cfg = HFConfig(config, "ToyConfig")
    cfg.token_ids("eos_token_id"), cfg.token_id("bos_token_id")
    return spec


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = ["hidden_size", "num_attention_heads", "num_hidden_layers", "vocab_size", "intermediate_size",
        "head_dim", "hidden_act", "rope_theta", "rope_scaling", "rope_parameters", "partial_rotary_factor",
        "max_position_embeddings", "layer_types", "eos_token_id", "bos_token_id",
        "original_max_position_embeddings"]  # fmt: skip
VALID = {
    "hidden_size": 32,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "vocab_size": 64,
    "intermediate_size": 48,
}
ROPE = st.fixed_dictionaries(
    {}, optional={"rope_type": st.sampled_from(["default", "linear", "dynamic", "yarn", "llama3", "longrope", "x"]),
                  "type": st.sampled_from(["linear", "yarn"]), "factor": JSON, "rope_theta": JSON,
                  "original_max_position_embeddings": JSON, "low_freq_factor": JSON, "high_freq_factor": JSON,
                  "short_factor": JSON, "long_factor": JSON, "truncate": JSON, "beta_fast": JSON},
)  # fmt: skip
CONFIGS = (
    st.builds(
        lambda base, extra, rope: {**base, **extra, **rope},
        st.fixed_dictionaries({}, optional={k: st.just(v) | JSON for k, v in VALID.items()}),
        st.dictionaries(st.sampled_from(KEYS), JSON, max_size=5),
        st.fixed_dictionaries({}, optional={"rope_scaling": ROPE, "rope_parameters": ROPE}),
    )
    | JSON
)


@settings(max_examples=300, deadline=None, database=None)
@given(CONFIGS)
def test_fuzz_config_to_spec_raises_only_spec_errors(config):
    try:
        spec_from_config(config, composed_mapping, "ToyConfig")
    except SpecError as exc:
        assert "\n" not in str(exc)
