"""fuse_projections keeps its promise that at most one block's projections exist twice:
the separate q/k/v and gate/up weights a block replaces are freed before the next block is
fused, not kept alive by the walk until the function returns."""

from __future__ import annotations

import weakref

import torch

from tttv2.blocks import TransformerStack
from tttv2.blocks.weights import fuse_projections
from tttv2.core import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    FeedForwardSpec,
    LMHeadSpec,
    ModelSpec,
    NormSpec,
)

HIDDEN, VOCAB, LAYERS = 16, 32, 3


def _stack() -> TransformerStack:
    norm = NormSpec(dim=HIDDEN, eps=1e-5)
    layer = DecoderLayerSpec(
        attention=AttentionSpec(
            hidden_dim=HIDDEN, num_heads=4, num_kv_heads=2, qkv_bias=True, max_seq_len=16
        ),
        ffn=FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=24),
        attn_norm=norm,
        ffn_norm=norm,
    )
    return TransformerStack(
        ModelSpec(
            embedding=EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN),
            layers=(layer,) * LAYERS,
            final_norm=norm,
            lm_head=LMHeadSpec(hidden_dim=HIDDEN, vocab_size=VOCAB),
            max_seq_len=16,
        )
    )


def test_each_blocks_old_projections_are_freed_before_the_next_block_is_fused() -> None:
    stack = _stack()
    replaced: list[list[tuple[str, weakref.ref]]] = []  # per fusion: the weights it replaced
    still_alive: set[tuple[int, str]] = set()  # (fusion index, weight) alive at a later fusion

    def watch(block: torch.nn.Module, method: str) -> None:
        fuse = getattr(block, method)

        def watched() -> None:
            for i, weights in enumerate(replaced):
                still_alive.update((i, name) for name, ref in weights if ref() is not None)
            before = {name: weakref.ref(p) for name, p in block.named_parameters()}
            fuse()
            now = dict(block.named_parameters())
            replaced.append([(name, ref) for name, ref in before.items() if name not in now])

        setattr(block, method, watched)  # an instance attribute: what getattr(block, method) finds

    for layer in stack.layers:
        watch(layer.attention, "fuse_qkv")
        watch(layer.ffn, "fuse_gate_up")

    assert fuse_projections(stack) == 2 * LAYERS
    assert len(replaced) == 2 * LAYERS
    assert all(weights for weights in replaced)  # every fusion replaced some weights
    assert {name for weights in replaced for name, _ in weights} >= {
        "q_proj.weight", "k_proj.weight", "v_proj.weight", "q_proj.bias", "gate_proj.weight", "up_proj.weight",
    }  # fmt: skip
    assert not still_alive, (
        f"replaced weights alive when a later block was fused: {sorted(still_alive)}"
    )
    assert all(ref() is None for weights in replaced for _, ref in weights)
    assert all(
        layer.attention.qkv_proj is not None and layer.ffn.gate_up_proj is not None
        for layer in stack.layers
    )
