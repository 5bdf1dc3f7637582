"""The shard plan, pure: which heads, KV heads, columns, experts and vocabulary rows each
rank holds, checked against the definitions (every head / row exactly once, every rank's
query heads served by the KV head it holds, vLLM's replication when KV heads are fewer
than ranks), and sizes that do not divide refused by name."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tp_helpers import llama_spec

from tttv2.blocks.parallel import (
    AttentionShard,
    FeedForwardShard,
    ModelShardPlan,
    MoEShard,
    ShardPlanError,
    TensorSlice,
    VocabShard,
)
from tttv2.core.specs import AttentionSpec, FeedForwardSpec, MoESpec


@st.composite
def attention_and_world(draw):
    world = draw(st.sampled_from([1, 2, 4, 8]))
    kv = draw(st.sampled_from([h for h in (1, 2, 4, 8, 16) if h % world == 0 or world % h == 0]))
    group = draw(st.integers(1, 4))
    heads = kv * group
    if heads % world:
        heads = world * kv  # keep heads divisible by the world and by the KV heads
    spec = AttentionSpec(hidden_dim=8 * heads, num_heads=heads, num_kv_heads=kv, head_dim=8)
    return spec, world


@settings(max_examples=60, deadline=None)
@given(attention_and_world())
def test_every_query_head_once_and_served_by_the_rank_kv_head(case):
    spec, world = case
    shards = [AttentionShard(spec, world, r) for r in range(world)]
    heads = [h for s in shards for h in range(*s.heads)]
    assert heads == list(range(spec.num_heads))
    for s in shards:
        assert s.local_spec.num_heads * world == spec.num_heads
        assert s.local_spec.head_dim == spec.head_dim and s.local_spec.hidden_dim == spec.hidden_dim
        # every query head h of this rank uses KV head h // group_size: the rank must hold it
        for h in range(*s.heads):
            kv = h // spec.group_size
            assert s.kv_heads[0] <= kv < s.kv_heads[1]
        assert s.local_spec.num_heads % s.local_spec.num_kv_heads == 0
    held = [kv for s in shards for kv in range(*s.kv_heads)]
    assert sorted(set(held)) == list(range(spec.num_kv_heads))
    copies = {kv: held.count(kv) for kv in set(held)}
    assert set(copies.values()) == {max(1, world // spec.num_kv_heads)}
    assert all(s.kv_replicas == max(1, world // spec.num_kv_heads) for s in shards)


def test_mqa_over_two_ranks_replicates_the_kv_head_like_vllm():
    spec = AttentionSpec(hidden_dim=64, num_heads=4, num_kv_heads=1)
    a, b = (AttentionShard(spec, 2, r) for r in (0, 1))
    assert (a.heads, b.heads) == ((0, 2), (2, 4))
    assert a.kv_heads == b.kv_heads == (0, 1) and a.kv_replicas == 2
    assert a.tensors()["k_proj.weight"] == TensorSlice(0, 0, 16, 16)


def test_gqa_over_four_ranks_puts_each_kv_head_on_consecutive_ranks():
    spec = AttentionSpec(hidden_dim=64, num_heads=8, num_kv_heads=2)
    assert [AttentionShard(spec, 4, r).kv_heads for r in range(4)] == [
        (0, 1),
        (0, 1),
        (1, 2),
        (1, 2),
    ]


@pytest.mark.parametrize(
    "spec, world, field",
    [
        (AttentionSpec(hidden_dim=96, num_heads=6, num_kv_heads=2), 4, "num_heads"),
        (AttentionSpec(hidden_dim=96, num_heads=12, num_kv_heads=3), 2, "num_kv_heads"),
        (AttentionSpec(hidden_dim=96, num_heads=12, num_kv_heads=6), 4, "num_kv_heads"),
    ],
)
def test_heads_that_do_not_divide_are_refused_naming_the_field(spec, world, field):
    with pytest.raises(ShardPlanError, match=f"attention.{field}=.*world_size \\({world}\\)"):
        AttentionShard(spec, world, 0)


def test_model_plan_refuses_before_loading_and_names_the_layer():
    with pytest.raises(ShardPlanError, match=r"layers\[0\]\.attention\.num_heads=4"):
        ModelShardPlan(llama_spec(heads=4, kv_heads=2), 8, 0)
    with pytest.raises(ShardPlanError, match=r"layers\[0\]\.ffn\.intermediate_dim=100"):
        ModelShardPlan(llama_spec(heads=8, kv_heads=8, inter=100), 8, 0)
    with pytest.raises(ShardPlanError, match="rank=2"):
        ModelShardPlan(llama_spec(), 2, 2)


def test_column_then_row_slices_rebuild_the_product():
    """Sum over ranks of down[:, cols] @ act(gate[cols] x) * up[cols] x equals the full FFN:
    the slices the plan names are the right rows and columns."""
    spec = FeedForwardSpec(hidden_dim=8, intermediate_dim=12, bias=True)
    torch.manual_seed(0)
    w = {n: torch.randn(12, 8) for n in ("gate_proj.weight", "up_proj.weight")}
    w["down_proj.weight"] = torch.randn(8, 12)
    w |= {
        "gate_proj.bias": torch.randn(12),
        "up_proj.bias": torch.randn(12),
        "down_proj.bias": torch.randn(8),
    }
    x = torch.randn(3, 8)

    def ffn(p, bias_once):
        h = torch.nn.functional.silu(x @ p["gate_proj.weight"].T + p["gate_proj.bias"]) * (
            x @ p["up_proj.weight"].T + p["up_proj.bias"]
        )
        return h @ p["down_proj.weight"].T + (p["down_proj.bias"] if bias_once else 0)

    for world in (2, 3, 4):
        total = ffn(w, True) * 0
        for r in range(world):
            plan = FeedForwardShard(spec, world, r).tensors()
            assert plan["down_proj.bias"].is_replicated
            total = total + ffn({n: plan[n].take(t) for n, t in w.items()}, False)
        torch.testing.assert_close(total + w["down_proj.bias"], ffn(w, True), rtol=1e-5, atol=1e-5)


def test_vocab_rows_cover_the_vocabulary_once_padded_to_one_size():
    for vocab, world in ((101, 2), (10, 4), (8, 8), (5, 4)):
        shards = [VocabShard(vocab, world, r) for r in range(world)]
        rows = [v for s in shards for v in range(*s.rows)]
        assert rows == list(range(vocab))
        assert all(s.padded == -(-vocab // world) >= s.size for s in shards)
    with pytest.raises(ShardPlanError, match="vocab_size=3"):
        VocabShard(3, 4, 0)


def test_moe_experts_split_whole_and_router_replicated():
    expert = FeedForwardSpec(hidden_dim=8, intermediate_dim=16)
    spec = MoESpec(hidden_dim=8, num_experts=5, top_k=2, expert=expert, shared_expert=expert)
    shards = [MoEShard(spec, 2, r) for r in range(2)]
    assert [s.experts for s in shards] == [(0, 3), (3, 5)]
    t = shards[1].tensors()
    assert t["gate.weight"].is_replicated and t["experts.4.down_proj.weight"].is_replicated
    assert t["experts.0.up_proj.weight"] is None  # rank 0's: not loaded on rank 1
    assert t["shared_expert.up_proj.weight"] == TensorSlice(0, 8, 16, 16)
    with pytest.raises(ShardPlanError, match="num_experts=5"):
        MoEShard(spec, 8, 0)


def test_model_plan_names_every_parameter_of_the_stack():
    from tttv2.blocks import TransformerStack

    for spec in (
        llama_spec(),
        llama_spec(tied=True, qkv_bias=True, out_bias=True),
        llama_spec(moe=True),
    ):
        names = {n for n, _ in TransformerStack(spec).named_parameters()}
        planned = set(ModelShardPlan(spec, 1, 0).tensors())
        assert planned == names
