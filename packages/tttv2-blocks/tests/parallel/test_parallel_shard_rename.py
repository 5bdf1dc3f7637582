"""A model's RenameRules as the shard loader's name mapping (what load_hf_checkpoint(mesh=)
uses): renamed and skipped tensors map as the rules say; a rule that splits or transforms
a stored tensor is refused by name (a rank reads stored tensors as they are)."""

from __future__ import annotations

import pytest

from tttv2.blocks.parallel import ShardLoadError
from tttv2.blocks.weights import RenameRules, Split, transpose
from tttv2.blocks.weights.sharded_loading import shard_rename
from tttv2.core.errors import InputError

RULES = RenameRules(
    [
        (r"model\.layers\.(\d+)\.self_attn\.([qkvo])_proj\.weight", r"layers.\1.attention.\2_proj.weight"),
        (r"model\.layers\.(\d+)\.self_attn\.rotary_emb\.inv_freq", None),
        (r"model\.layers\.(\d+)\.self_attn\.qkv_proj\.weight",
         Split((r"layers.\1.attention.q_proj.weight", r"layers.\1.attention.k_proj.weight",
                r"layers.\1.attention.v_proj.weight"))),
        (r"h\.(\d+)\.mlp\.c_fc\.weight", r"layers.\1.ffn.up_proj.weight", transpose),
    ]
)  # fmt: skip


def test_renamed_skipped_and_unmatched_names():
    rename = shard_rename(RULES)
    assert rename("model.layers.3.self_attn.k_proj.weight") == "layers.3.attention.k_proj.weight"
    assert rename("model.layers.0.self_attn.rotary_emb.inv_freq") is None
    assert rename("final_norm.weight") == "final_norm.weight"  # no rule: kept


@pytest.mark.parametrize(
    "name, how",
    [
        ("model.layers.1.self_attn.qkv_proj.weight", "part 1 of 3"),
        ("h.0.mlp.c_fc.weight", "transpose"),
    ],
)
def test_split_or_transformed_tensor_is_refused_by_name(name, how):
    with pytest.raises(ShardLoadError, match=rf"{name.replace('.', '[.]')}.*{how}") as info:
        shard_rename(RULES)(name)
    assert isinstance(info.value, InputError)  # one line in the CLI
