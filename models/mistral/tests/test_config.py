"""config.json -> ModelSpec: the window reaches every layer (or none), and README.md lists
exactly the config keys the mapping and the loader read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tttv2_model_mistral.config import model_spec

from tttv2.blocks.hf_config import HFConfig
from tttv2.core.model_plugins import architecture_of

BASE = {
    "architectures": ["MistralForCausalLM"], "vocab_size": 300, "hidden_size": 64, "intermediate_size": 96,
    "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512,
}  # fmt: skip


@pytest.mark.parametrize(
    ("window", "expected"), [(7, 7), (511, 511), (512, None), (4096, None), (None, None)]
)
def test_every_layer_gets_the_window_and_one_covering_the_context_is_none(window, expected):
    spec = model_spec(BASE | {"sliding_window": window, "layer_types": ["full_attention"] * 3})
    assert [layer.attention.sliding_window for layer in spec.layers] == [expected] * 3


def test_an_absent_window_is_mistralconfigs_default():
    from transformers import MistralConfig

    config = BASE | {"max_position_embeddings": 32768}
    assert {layer.attention.sliding_window for layer in model_spec(config).layers} == {
        MistralConfig().sliding_window
    }


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
        {
            "sliding_window": 8,
            "head_dim": 16,
            "rope_scaling": {
                "rope_type": "yarn",
                "factor": 4.0,
                "original_max_position_embeddings": 128,
            },
        },
    ):
        config = Recording(BASE | extra)
        model_spec(config)
        architecture_of(config)
        cfg = HFConfig(config, "MistralConfig")  # what load_hf_checkpoint reads besides the mapping
        cfg.token_ids("eos_token_id"), cfg.token_id("bos_token_id")
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    listed = re.search(r"<!-- config-keys -->(.*?)<!-- /config-keys -->", readme, re.S).group(1)
    assert set(re.findall(r"`([a-z_]+)`", listed)) == Recording.read
