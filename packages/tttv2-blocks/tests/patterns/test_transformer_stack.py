"""TransformerStack: equal to the float64 reference for random model specs (logits and
per-layer hidden states), in every execution mode of every built-in strategy over a
paged cache with ragged batches, chunked prefill and decode; tied heads stored once."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from patterns_helpers import record_router_logits, routing_is_clear, run_passes

from tttv2.blocks import DecoderLayer, PagedKVCache, TransformerStack
from tttv2.core import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    ExecutionMode,
    FeedForwardSpec,
    KVBlockManager,
    LMHeadSpec,
    ModelSpec,
    ModuleConfig,
    MoESpec,
    MultiModeStrategy,
    NormSpec,
    RopeSpec,
    create_module,
)
from tttv2.testing.reference.transformer_stack import reference_transformer_stack
from tttv2.testing.spec_strategies import model_specs

P, D = ExecutionMode.PREFILL, ExecutionMode.DECODE


def _randomize(stack: TransformerStack) -> None:
    with torch.no_grad():
        for name, p in stack.named_parameters():
            if name.endswith(("norm.weight", "norm.bias")):
                p.normal_(0.0, 0.3).add_(
                    0.0
                    if "unit_offset=True" in repr(stack.get_submodule(name.rsplit(".", 1)[0]))
                    else 1.0
                )


@settings(max_examples=12, deadline=None)
@given(spec=model_specs(moe=None), length=st.integers(1, 10), seed=st.integers(0, 999))
def test_stack_matches_reference(spec: ModelSpec, length: int, seed: int) -> None:
    assume(length <= spec.max_seq_len and (spec.embedding.max_positions or length) >= length)
    torch.manual_seed(seed)
    stack = TransformerStack(spec)
    _randomize(stack)
    routers = record_router_logits(stack)
    ids = torch.randint(0, spec.vocab_size, (length,))
    cache = stack.new_cache(16, 8)
    meta = KVBlockManager(16, 8, spec.max_seq_len).prepare([0], [length], P, logits="all")
    logits, hidden = stack(ids, meta, cache, output_hidden_states=True)
    moe_k = [layer.ffn.top_k for layer in spec.layers if isinstance(layer.ffn, MoESpec)]
    assume(routing_is_clear(routers, moe_k))
    ref_logits, ref_hidden = reference_transformer_stack(ids, dict(stack.state_dict()), spec)
    torch.testing.assert_close(logits.double(), ref_logits, rtol=1e-4, atol=1e-4)
    assert len(hidden) == spec.num_layers + 1
    for ours, ref in zip(hidden, ref_hidden, strict=True):
        torch.testing.assert_close(ours.double(), ref, rtol=1e-4, atol=1e-4)


def _alternating_spec() -> ModelSpec:
    """Local (sliding window 4, soft-capped) and global layers alternating, GQA, Llama-3
    RoPE, a MoE layer, tied head with final soft-cap."""
    H, max_len = 32, 64
    rope = RopeSpec(
        head_dim=8,
        theta=500000.0,
        scaling="llama3",
        factor=8.0,
        original_max_position=16,
        low_freq_factor=1.0,
        high_freq_factor=4.0,
        max_position=max_len,
    )
    norm = NormSpec(dim=H, eps=1e-5)
    dense = FeedForwardSpec(hidden_dim=H, intermediate_dim=48)

    def layer(window, ffn=dense):
        attention = AttentionSpec(
            hidden_dim=H,
            num_heads=4,
            num_kv_heads=2,
            rope=rope,
            max_seq_len=max_len,
            sliding_window=window,
            logit_softcap=20.0 if window else None,
        )
        return DecoderLayerSpec(attention=attention, ffn=ffn, attn_norm=norm, ffn_norm=norm)

    moe = MoESpec(
        hidden_dim=H,
        num_experts=4,
        top_k=2,
        expert=FeedForwardSpec(hidden_dim=H, intermediate_dim=16),
    )
    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=64, hidden_dim=H),
        layers=(layer(4), layer(None), layer(4, moe)),
        final_norm=norm,
        lm_head=LMHeadSpec(hidden_dim=H, vocab_size=64, tied=True, final_logit_softcap=15.0),
        max_seq_len=max_len,
    )


def _passes(mode: ExecutionMode) -> list:
    """Ragged fresh prefill, a mixed pass (3 new tokens after context / 1 new token), two
    single-token passes; DECODE takes one token per sequence, so it starts from a prefill."""
    if mode is D:
        return [([(0, 9), (1, 4)], P), ([(0, 1), (1, 1)], D), ([(0, 1), (1, 1)], D), ([(1, 1)], D)]
    return [
        ([(0, 9), (1, 4)], mode),
        ([(0, 3), (1, 1)], mode),
        ([(0, 1), (1, 1)], mode),
        ([(1, 1)], mode),
    ]


STRATEGIES = ["prefill_decode", "unified", MultiModeStrategy(chunk_size=3), "continuous_batching"]


@pytest.mark.parametrize(
    "strategy", STRATEGIES, ids=lambda s: s if isinstance(s, str) else "multi_mode"
)
def test_every_mode_of_every_strategy_matches_the_reference(strategy) -> None:
    torch.manual_seed(0)
    spec = _alternating_spec()
    stack = TransformerStack(spec, execution_strategy=strategy)
    tokens = {0: torch.randint(0, 64, (14,)).tolist(), 1: torch.randint(0, 64, (7,)).tolist()}
    weights = dict(stack.state_dict())
    expected = {
        s: reference_transformer_stack(torch.tensor(t), weights, spec)[0] for s, t in tokens.items()
    }
    modes = stack.supported_modes()
    assert {P, D} <= set(modes)
    for mode in modes:
        rows = run_passes(stack, tokens, _passes(mode))
        assert stack.current_mode in (mode, P)
        for (s, p), row in rows.items():
            error = (row.double() - expected[s][p]).abs().max().item()
            assert error < 1e-4, f"{mode}: sequence {s} position {p} differs by {error}"


def test_set_mode_and_switch_strategy_reach_every_attention() -> None:
    stack = TransformerStack(_alternating_spec())
    stack.set_mode(D)
    assert all(layer.attention.current_mode is D for layer in stack.layers)
    stack.switch_strategy("unified")
    assert all(layer.attention.execution_strategy.name == "unified" for layer in stack.layers)
    assert ExecutionMode.UNIFIED in stack.supported_modes()


def test_only_logits_rows_are_normed_and_projected() -> None:
    torch.manual_seed(1)
    stack = TransformerStack(_alternating_spec())
    seen = []
    stack.final_norm.register_forward_hook(lambda _m, args, _o: seen.append(args[0].shape[0]))
    cache = stack.new_cache(16, 4)
    meta = KVBlockManager(16, 4, 64).prepare([0, 1], [5, 3], P, logits="last")
    logits = stack(torch.randint(0, 64, (8,)), meta, cache)
    assert logits.shape == (2, 64) and seen == [2]


def test_tied_head_is_stored_once_and_new_cache_follows_the_parameters() -> None:
    stack = TransformerStack(_alternating_spec())
    assert stack.lm_head.weight is stack.embedding.weight
    names = [n for n, _ in stack.named_parameters()]
    assert "embedding.weight" in names and "lm_head.weight" not in names  # deduplicated
    stack = stack.to(torch.bfloat16)
    cache = stack.new_cache(8, 4)
    assert isinstance(cache, PagedKVCache) and cache.dtype == torch.bfloat16 and len(cache) == 3
    assert cache.layer(0).key.shape == (8, 4, 2, 8)
    assert stack.new_cache(8, 4, dtype=torch.float32).dtype == torch.float32


def test_bad_inputs_are_reported_and_create_module_builds_a_stack() -> None:
    stack = create_module(ModuleConfig(_alternating_spec(), execution_strategy="unified"))
    assert isinstance(stack, TransformerStack) and all(
        isinstance(x, DecoderLayer) for x in stack.layers
    )
    cache = stack.new_cache(8, 4)
    meta = KVBlockManager(8, 4, 64).prepare([0], [3], P)
    with pytest.raises(ValueError, match="input_ids must be"):
        stack(torch.zeros(1, 3, dtype=torch.long), meta, cache)
    with pytest.raises(ValueError, match="meta describes 3"):
        stack(torch.zeros(4, dtype=torch.long), meta, cache)
    with pytest.raises(ValueError, match="cache has 1 layers"):
        stack(torch.zeros(3, dtype=torch.long), meta, PagedKVCache([cache.layer(0)]))
