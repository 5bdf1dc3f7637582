"""Hypothesis strategies for decoder-layer and whole-model specs built from block specs."""

from __future__ import annotations

from hypothesis import strategies as st

from tttv2.core.specs import DecoderLayerSpec, ModelSpec
from tttv2.testing.spec_strategies.blocks import (
    attention_specs,
    embedding_specs,
    ffn_specs,
    lm_head_specs,
    moe_specs,
    norm_specs,
)


@st.composite
def decoder_layer_specs(
    draw: st.DrawFn,
    hidden_dim: int | None = None,
    max_seq_len: int | None = None,
    moe: bool | None = None,
    parallel: bool | None = None,
) -> DecoderLayerSpec:
    """Sequential (optionally with Gemma sandwich norms) or parallel layers; the FFN is a
    dense MLP or (``moe``: True always, None sometimes) a mixture of experts."""
    hidden_dim = hidden_dim or draw(st.integers(2, 16).map(lambda n: 4 * n))
    use_moe = draw(st.booleans()) if moe is None else moe
    is_parallel = draw(st.booleans()) if parallel is None else parallel
    norms = norm_specs(dim=hidden_dim)
    sandwich = not is_parallel and draw(st.booleans())
    return DecoderLayerSpec(
        attention=draw(attention_specs(hidden_dim=hidden_dim, max_seq_len=max_seq_len)),
        ffn=draw(moe_specs(hidden_dim=hidden_dim, max_experts=4))
        if use_moe
        else draw(ffn_specs(hidden_dim=hidden_dim)),
        attn_norm=draw(norms),
        ffn_norm=draw(st.one_of(st.none(), norms) if is_parallel else norms),
        post_attn_norm=draw(norms) if sandwich else None,
        post_ffn_norm=draw(norms) if sandwich else None,
        parallel=is_parallel,
    )


@st.composite
def model_specs(
    draw: st.DrawFn,
    num_layers: int | None = None,
    hidden_dim: int | None = None,
    vocab_size: int | None = None,
    moe: bool | None = False,
) -> ModelSpec:
    """A small decoder-only model: 1-3 layers (each drawn independently, so sliding and
    global attention can alternate), embedding, final norm and LM head."""
    hidden_dim = hidden_dim or draw(st.integers(2, 16).map(lambda n: 4 * n))
    vocab_size = vocab_size or draw(st.integers(8, 128))
    max_seq_len = draw(st.integers(16, 128))
    n = num_layers or draw(st.integers(1, 3))
    layers = tuple(
        draw(decoder_layer_specs(hidden_dim=hidden_dim, max_seq_len=max_seq_len, moe=moe))
        for _ in range(n)
    )
    return ModelSpec(
        embedding=draw(
            embedding_specs(hidden_dim=hidden_dim, vocab_size=vocab_size, min_positions=max_seq_len)
        ),
        layers=layers,
        final_norm=draw(norm_specs(dim=hidden_dim)),
        lm_head=draw(lm_head_specs(hidden_dim=hidden_dim, vocab_size=vocab_size)),
        max_seq_len=max_seq_len,
    )
