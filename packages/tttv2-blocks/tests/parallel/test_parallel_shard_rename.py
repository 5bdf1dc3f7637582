"""A model's RenameRules as the shard loader's mapping. ``shard_placements`` (what
load_hf_checkpoint(mesh=) uses): renamed and skipped tensors map as the rules say, a split
and/or transposed tensor maps to its parts' regions of the stored tensor, and a rule whose
transform is opaque is refused by name. ``shard_rename`` (a name per tensor) still refuses
any split or transform: one name cannot say which part of the stored tensor it is."""

from __future__ import annotations

import pytest
import torch

from tttv2.blocks.parallel import ShardLoadError
from tttv2.blocks.weights import RenameRules, Split, transpose
from tttv2.blocks.weights.sharded_loading import shard_placements, shard_rename
from tttv2.core.errors import InputError

RULES = RenameRules(
    [
        (r"model\.layers\.(\d+)\.self_attn\.([qkvo])_proj\.weight", r"layers.\1.attention.\2_proj.weight"),
        (r"model\.layers\.(\d+)\.self_attn\.rotary_emb\.inv_freq", None),
        (r"model\.layers\.(\d+)\.self_attn\.qkv_proj\.weight",
         Split((r"layers.\1.attention.q_proj.weight", r"layers.\1.attention.k_proj.weight",
                r"layers.\1.attention.v_proj.weight"))),
        (r"h\.(\d+)\.mlp\.c_fc\.weight", r"layers.\1.ffn.up_proj.weight", transpose),
        (r"h\.(\d+)\.mlp\.scaled\.weight", r"layers.\1.ffn.up_proj.weight", lambda t: t * 2),
        (r"experts\.(\d+)\.gate_up", Split((r"e\1.gate", r"e\1.up")), torch.Tensor.flatten),
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


def test_placements_of_a_split_and_of_a_transpose_are_regions_of_the_stored_tensor():
    placements = shard_placements(RULES)
    qkv = placements("model.layers.1.self_attn.qkv_proj.weight")
    assert [p.target for p in qkv] == [f"layers.1.attention.{x}_proj.weight" for x in "qkv"]
    assert [p.region.index for p in qkv] == [0, 1, 2]
    assert all(p.region.count == 3 and not p.region.transposed for p in qkv)
    (up,) = placements("h.0.mlp.c_fc.weight")
    assert up.target == "layers.0.ffn.up_proj.weight" and up.region.transposed
    (plain,) = placements("model.layers.3.self_attn.k_proj.weight")
    assert plain.target == "layers.3.attention.k_proj.weight" and plain.region is None
    assert placements("model.layers.0.self_attn.rotary_emb.inv_freq") is None


@pytest.mark.parametrize(
    "name, how",
    [("h.2.mlp.scaled.weight", "<lambda>"), ("experts.0.gate_up", "flatten, part 1 of 2")],
)
def test_an_opaque_transform_is_refused_by_name(name, how):
    with pytest.raises(ShardLoadError, match=rf"{name.replace('.', '[.]')}.*{how}.*not a range"):
        shard_placements(RULES)(name)
