"""A tiny random ``tttv2.blocks.TransformerStack`` for runtime integration tests and the
serving benchmark. Imports tttv2.blocks only when called."""

from __future__ import annotations

import math

import torch


def tiny_model_spec(
    num_layers: int = 2, hidden: int = 32, vocab_size: int = 64, max_seq_len: int = 128
):
    from tttv2.core import (
        AttentionSpec,
        DecoderLayerSpec,
        EmbeddingSpec,
        FeedForwardSpec,
        LMHeadSpec,
        ModelSpec,
        NormSpec,
        RopeSpec,
    )

    heads = max(2, hidden // 16)
    norm = NormSpec(dim=hidden, eps=1e-5)
    attention = AttentionSpec(
        hidden_dim=hidden,
        num_heads=heads,
        num_kv_heads=heads // 2,
        rope=RopeSpec(head_dim=hidden // heads, max_position=max_seq_len),
        max_seq_len=max_seq_len,
    )
    layer = DecoderLayerSpec(
        attention=attention,
        ffn=FeedForwardSpec(hidden_dim=hidden, intermediate_dim=2 * hidden),
        attn_norm=norm,
        ffn_norm=norm,
    )
    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=vocab_size, hidden_dim=hidden),
        layers=(layer,) * num_layers,
        final_norm=norm,
        lm_head=LMHeadSpec(hidden_dim=hidden, vocab_size=vocab_size),
        max_seq_len=max_seq_len,
    )


def tiny_stack(
    spec,
    strategy: str = "prefill_decode",
    seed: int = 0,
    device: str = "cpu",
    dtype=torch.float32,
    later_layer_scale: float = 1.0,
):
    """A TransformerStack with seeded random weights: unit-ish norms, N(0, 1/fan_in)
    projections, N(0, 1) embeddings, a head scaled for peaked but not one-hot logits.
    ``later_layer_scale`` scales the output projections of every layer after the first (a
    small value makes the first layer alone a good draft model)."""
    from tttv2.blocks import TransformerStack

    stack = TransformerStack(spec, execution_strategy=strategy)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in stack.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "norm" in name:
                p.copy_(1.0 + 0.1 * noise)
            elif name.startswith("embedding"):
                p.copy_(noise)
            elif name.startswith("lm_head"):
                p.copy_(3.0 * noise / math.sqrt(p.shape[-1]))
            else:
                p.copy_(noise / math.sqrt(p.shape[-1]))
                if not name.startswith("layers.0.") and name.endswith(
                    ("o_proj.weight", "down_proj.weight")
                ):
                    p.mul_(later_layer_scale)
    return stack.to(device=device, dtype=dtype)


def truncated_stack(stack, num_layers: int, strategy: str = "prefill_decode"):
    """A draft: the same embedding, first ``num_layers`` layers, final norm and head."""
    from dataclasses import replace

    from tttv2.blocks import TransformerStack

    spec = replace(stack.spec, layers=stack.spec.layers[:num_layers])
    draft = TransformerStack(spec, execution_strategy=strategy)
    draft.load_state_dict({k: v for k, v in stack.state_dict().items() if k in draft.state_dict()})
    p = next(stack.parameters())
    return draft.to(device=p.device, dtype=p.dtype)
