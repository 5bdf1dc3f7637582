"""DecoderLayer: pre-norm, sandwich (Gemma 2/3) and parallel (GPT-J/Phi-2) layers with
dense or MoE feed-forwards equal the float64 reference for random specs, one sequence or a
ragged batch; set_mode reaches the attention inside."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from patterns_helpers import record_router_logits, routing_is_clear

from tttv2.blocks import Attention, DecoderLayer, FeedForward, LayerNorm, MoE, PagedKVCache, RMSNorm
from tttv2.core import (
    AttentionSpec,
    DecoderLayerSpec,
    ExecutionMode,
    FeedForwardSpec,
    KVBlockManager,
    ModuleConfig,
    NormSpec,
    create_module,
)
from tttv2.core.specs import MoESpec
from tttv2.testing.reference.decoder_layer import reference_decoder_layer
from tttv2.testing.spec_strategies import decoder_layer_specs


def _randomize_norms(layer: DecoderLayer) -> None:
    with torch.no_grad():
        for m in layer.modules():
            if isinstance(m, (RMSNorm, LayerNorm)):
                m.weight.normal_(0.0 if m.unit_offset else 1.0, 0.3)
                if getattr(m, "bias", None) is not None:
                    m.bias.normal_(0, 0.3)


def _run_prefill(layer: DecoderLayer, xs: list[torch.Tensor]) -> list[torch.Tensor]:
    spec = layer.spec.attention
    cache = PagedKVCache.for_specs([spec], num_blocks=32, block_size=4, dtype=torch.float32)
    blocks = KVBlockManager(32, 4, spec.max_seq_len)
    meta = blocks.prepare(
        list(range(len(xs))), [len(x) for x in xs], ExecutionMode.PREFILL, logits="all"
    )
    out = layer(torch.cat(xs), meta, cache.layer(0))
    return list(out.split([len(x) for x in xs]))


@settings(max_examples=15, deadline=None)
@given(
    spec=decoder_layer_specs(),
    lens=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    seed=st.integers(0, 999),
)
def test_decoder_layer_matches_reference(
    spec: DecoderLayerSpec, lens: list[int], seed: int
) -> None:
    assume(max(lens) <= spec.attention.max_seq_len)
    torch.manual_seed(seed)
    layer = DecoderLayer(spec)
    _randomize_norms(layer)
    routers = record_router_logits(layer)
    xs = [torch.randn(n, spec.hidden_dim) for n in lens]
    outs = _run_prefill(layer, xs)
    if isinstance(spec.ffn, MoESpec):
        assume(routing_is_clear(routers, [spec.ffn.top_k]))
    weights = dict(layer.state_dict())
    for x, out in zip(xs, outs, strict=True):
        expected = reference_decoder_layer(x, weights, spec)
        torch.testing.assert_close(out.double(), expected, rtol=1e-4, atol=1e-4)


def _spec(parallel=False, sandwich=False, moe=False, ffn_norm=True) -> DecoderLayerSpec:
    norm = NormSpec(dim=16, unit_offset=sandwich)
    ffn = FeedForwardSpec(hidden_dim=16, intermediate_dim=24)
    if moe:
        ffn = MoESpec(hidden_dim=16, num_experts=4, top_k=2, expert=ffn)
    return DecoderLayerSpec(
        attention=AttentionSpec(hidden_dim=16, num_heads=4, num_kv_heads=2, max_seq_len=32),
        ffn=ffn,
        attn_norm=norm,
        ffn_norm=norm if ffn_norm else None,
        post_attn_norm=norm if sandwich else None,
        post_ffn_norm=norm if sandwich else None,
        parallel=parallel,
    )


def test_submodules_follow_the_spec() -> None:
    layer = DecoderLayer(_spec(sandwich=True))
    assert isinstance(layer.attention, Attention) and isinstance(layer.ffn, FeedForward)
    assert isinstance(layer.post_attn_norm, RMSNorm) and layer.post_attn_norm.unit_offset
    assert isinstance(DecoderLayer(_spec(moe=True)).ffn, MoE)
    shared = DecoderLayer(_spec(parallel=True, ffn_norm=False))
    assert (
        shared.ffn_norm is None and shared.post_attn_norm is None and shared.post_ffn_norm is None
    )


def test_parallel_layer_with_shared_norm_feeds_the_same_normed_input() -> None:
    layer = DecoderLayer(_spec(parallel=True, ffn_norm=False))
    seen = {}
    layer.ffn.register_forward_pre_hook(lambda _m, args: seen.__setitem__("ffn", args[0]))
    layer.attention.register_forward_pre_hook(lambda _m, args: seen.__setitem__("attn", args[0]))
    _run_prefill(layer, [torch.randn(5, 16)])
    assert torch.equal(seen["ffn"], seen["attn"])


def test_set_mode_reaches_the_attention_and_strategy_is_shared() -> None:
    layer = DecoderLayer(_spec(), execution_strategy="unified")
    assert layer.attention.execution_strategy is layer.execution_strategy
    layer.set_mode(ExecutionMode.DECODE)
    assert layer.attention.current_mode is ExecutionMode.DECODE
    assert ExecutionMode.UNIFIED in layer.supported_modes()


def test_create_module_and_errors() -> None:
    layer = create_module(ModuleConfig(_spec(), execution_strategy="continuous_batching"))
    assert isinstance(layer, DecoderLayer)
    assert ExecutionMode.CONTINUOUS_BATCH in layer.supported_modes()
    with pytest.raises(TypeError, match="DecoderLayerSpec"):
        DecoderLayer(_spec().attention)  # type: ignore[arg-type]
