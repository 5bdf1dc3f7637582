"""ModelSpecs of real model sizes, built from their published configs (config.json)."""

from __future__ import annotations

from tttv2.core.specs import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    FeedForwardSpec,
    LMHeadSpec,
    ModelSpec,
    MoESpec,
    NormSpec,
)


def decoder(
    *,
    hidden: int,
    layers: int,
    heads: int,
    kv_heads: int,
    intermediate: int,
    vocab: int,
    tied: bool,
    qkv_bias: bool = False,
    experts: int = 0,
    top_k: int = 2,
    softcap: float | None = None,
    max_seq_len: int = 8192,
) -> ModelSpec:
    attention = AttentionSpec(
        hidden_dim=hidden,
        num_heads=heads,
        num_kv_heads=kv_heads,
        qkv_bias=qkv_bias,
        logit_softcap=softcap,
        max_seq_len=max_seq_len,
    )
    ffn = FeedForwardSpec(hidden_dim=hidden, intermediate_dim=intermediate)
    if experts:
        ffn = MoESpec(hidden_dim=hidden, num_experts=experts, top_k=top_k, expert=ffn)
    norm = NormSpec(dim=hidden, eps=1e-5)
    layer = DecoderLayerSpec(attention=attention, ffn=ffn, attn_norm=norm, ffn_norm=norm)
    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=vocab, hidden_dim=hidden),
        layers=(layer,) * layers,
        final_norm=norm,
        lm_head=LMHeadSpec(hidden_dim=hidden, vocab_size=vocab, tied=tied),
        max_seq_len=max_seq_len,
    )


def llama31_8b() -> ModelSpec:
    return decoder(
        hidden=4096, layers=32, heads=32, kv_heads=8, intermediate=14336, vocab=128256, tied=False
    )


def llama32_1b() -> ModelSpec:
    return decoder(
        hidden=2048, layers=16, heads=32, kv_heads=8, intermediate=8192, vocab=128256, tied=True
    )


def qwen25_05b() -> ModelSpec:
    return decoder(
        hidden=896,
        layers=24,
        heads=14,
        kv_heads=2,
        intermediate=4864,
        vocab=151936,
        tied=True,
        qkv_bias=True,
    )


def mixtral_8x7b() -> ModelSpec:
    return decoder(
        hidden=4096,
        layers=32,
        heads=32,
        kv_heads=8,
        intermediate=14336,
        vocab=32000,
        tied=False,
        experts=8,
    )
