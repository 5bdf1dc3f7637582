"""config.json -> per-layer sliding windows and biases, against the windows transformers'
Qwen2Config itself derives from the same file (``layer_types`` and ``sliding_window`` after
``__post_init__``), for every combination of the keys that place them."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from tttv2_model_qwen2 import model_spec

from tttv2.blocks.hf_config import HFConfigError
from tttv2.core.model_plugins import architecture_of

BASE = {
    "architectures": ["Qwen2ForCausalLM"], "vocab_size": 300, "hidden_size": 64, "intermediate_size": 96,
    "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512,
}  # fmt: skip

LAYER_TYPES = [None, ["full_attention", "sliding_attention", "full_attention", "sliding_attention"]]
CASES = [
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
        [True, False, "-"], [7, None, 512, 4096, "-"], [0, 2, 4, "-"], LAYER_TYPES + ["-"]
    )
]


def transformers_windows(config: dict) -> list[int | None] | None:
    """Each layer's window as transformers' Qwen2 attention takes it, or ``None`` where
    transformers refuses the config (a sliding layer without a window)."""
    from transformers import Qwen2Config

    hf = Qwen2Config(**config)
    if "sliding_attention" in hf.layer_types and hf.sliding_window is None:
        return None
    return [hf.sliding_window if t == "sliding_attention" else None for t in hf.layer_types]


@pytest.mark.parametrize(
    "extra", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "none"
)
def test_layer_windows_are_the_ones_transformers_derives(extra):
    config = BASE | extra
    expected = transformers_windows(config)
    if expected is None:
        with pytest.raises(HFConfigError, match="layer_types"):
            model_spec(config)
        return
    # a window as long as the context (512) attends to everything: no window, same output
    expected = [None if w is not None and w >= 512 else w for w in expected]
    assert [layer.attention.sliding_window for layer in model_spec(config).layers] == expected


def test_qkv_have_biases_and_o_has_none():
    (attention,) = {layer.attention for layer in model_spec(BASE).layers}
    assert attention.qkv_bias and not attention.out_bias


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
    from tttv2.blocks.hf_config import HFConfig

    Recording.read = set()
    for extra in (
        {},
        {
            "use_sliding_window": True,
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
        cfg = HFConfig(config, "Qwen2Config")  # what load_hf_checkpoint reads besides the mapping
        cfg.token_ids("eos_token_id"), cfg.token_id("bos_token_id")
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    listed = re.search(r"<!-- config-keys -->(.*?)<!-- /config-keys -->", readme, re.S).group(1)
    assert set(re.findall(r"`([a-z_]+)`", listed)) == Recording.read
