"""Gemma 3's older config spelling (``rope_theta``, ``rope_local_base_freq``,
``rope_scaling``, ``sliding_window_pattern``) means what ``Gemma3TextConfig`` converts it to:
the same spec as the file transformers would save from it."""

from __future__ import annotations

import pytest
from tttv2_model_gemma3 import model_spec

from tttv2.core.errors import SpecError

BASE = {
    "vocab_size": 320, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 3,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 256,
}  # fmt: skip
OLD = BASE | {
    "rope_theta": 5000.0, "rope_local_base_freq": 50.0, "sliding_window": 8,
    "rope_scaling": {"rope_type": "linear", "factor": 4.0}, "sliding_window_pattern": 3,
}  # fmt: skip


@pytest.mark.parametrize("config", [OLD, BASE], ids=["old-spelling", "defaults"])
def test_spec_equals_the_spec_of_what_transformers_saves(config):
    from transformers import Gemma3TextConfig

    saved = Gemma3TextConfig(**config).to_dict()
    assert model_spec(config) == model_spec(saved)


def test_local_and_global_layers_get_their_own_rope_and_window():
    local, _, full = (layer.attention for layer in model_spec(OLD).layers)
    assert (local.sliding_window, local.rope.theta, local.rope.scaling) == (8, 50.0, "default")
    assert (full.sliding_window, full.rope.theta, full.rope.scaling, full.rope.factor) == (None, 5000.0, "linear", 4.0)
    assert local.qk_norm and local.qk_norm_unit_offset and local.logit_softcap is None


def test_bidirectional_attention_is_refused_by_name():
    with pytest.raises(SpecError, match="use_bidirectional_attention"):
        model_spec(BASE | {"use_bidirectional_attention": True})
