"""A GPT-2-small decoder layer against Hugging Face: hidden 768, MHA with 12 heads of 64
and biases, LayerNorm with bias (eps 1e-5) before attention and MLP, a plain (ungated)
GELU-tanh MLP of 3072 with biases, learned absolute positions (1024) and a tied head.
GPT-2's ``Conv1D`` stores weights ``[in, out]`` and fuses q/k/v as ``c_attn``: transposed
and split into our ``nn.Linear`` projections."""

from __future__ import annotations

import torch
from hf_layer_comparison import compare_one_layer
from transformers import GPT2Config, GPT2LMHeadModel

from tttv2.blocks import TransformerStack
from tttv2.core import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    FeedForwardSpec,
    LMHeadSpec,
    ModelSpec,
    NormSpec,
)

VOCAB, MAX_LEN, POSITIONS = 256, 128, 1024
HIDDEN, HEADS, INTERMEDIATE = 768, 12, 3072


def _our_state(hf: GPT2LMHeadModel) -> dict[str, torch.Tensor]:
    t, block = hf.transformer, hf.transformer.h[0]
    q, k, v = block.attn.c_attn.weight.T.chunk(3, dim=0)
    qb, kb, vb = block.attn.c_attn.bias.chunk(3)
    state = {
        "embedding.weight": t.wte.weight, "embedding.position_embedding": t.wpe.weight,
        "final_norm.weight": t.ln_f.weight, "final_norm.bias": t.ln_f.bias,
        "layers.0.attn_norm.weight": block.ln_1.weight, "layers.0.attn_norm.bias": block.ln_1.bias,
        "layers.0.attention.q_proj.weight": q, "layers.0.attention.q_proj.bias": qb,
        "layers.0.attention.k_proj.weight": k, "layers.0.attention.k_proj.bias": kb,
        "layers.0.attention.v_proj.weight": v, "layers.0.attention.v_proj.bias": vb,
        "layers.0.attention.o_proj.weight": block.attn.c_proj.weight.T,
        "layers.0.attention.o_proj.bias": block.attn.c_proj.bias,
        "layers.0.ffn_norm.weight": block.ln_2.weight, "layers.0.ffn_norm.bias": block.ln_2.bias,
        "layers.0.ffn.up_proj.weight": block.mlp.c_fc.weight.T, "layers.0.ffn.up_proj.bias": block.mlp.c_fc.bias,
        "layers.0.ffn.down_proj.weight": block.mlp.c_proj.weight.T, "layers.0.ffn.down_proj.bias": block.mlp.c_proj.bias,
    }
    state["lm_head.weight"] = state["embedding.weight"]
    return state


def test_gpt2_small_layer_equals_hugging_face() -> None:
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=VOCAB, n_embd=HIDDEN, n_layer=1, n_head=HEADS, n_positions=POSITIONS,
                        n_inner=INTERMEDIATE, activation_function="gelu_new", layer_norm_epsilon=1e-5)
    hf = GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # HF initialises LayerNorms to (1, 0) and biases to 0: make them matter
        for name, p in hf.named_parameters():
            if "bias" in name or "ln_" in name:
                p.normal_(0.0, 0.3).add_(1.0 if name.endswith("weight") else 0.0)
    norm = NormSpec(dim=HIDDEN, norm_type="layer", eps=1e-5, bias=True)
    layer = DecoderLayerSpec(
        attention=AttentionSpec(hidden_dim=HIDDEN, num_heads=HEADS, qkv_bias=True, out_bias=True, max_seq_len=MAX_LEN),
        ffn=FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=INTERMEDIATE, activation="gelu_tanh", gated=False,
                            bias=True),
        attn_norm=norm, ffn_norm=norm,
    )
    spec = ModelSpec(embedding=EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN, max_positions=POSITIONS),
                     layers=(layer,), final_norm=norm,
                     lm_head=LMHeadSpec(hidden_dim=HIDDEN, vocab_size=VOCAB, tied=True), max_seq_len=MAX_LEN)
    stack = TransformerStack(spec)
    stack.load_state_dict({k: v.detach().clone() for k, v in _our_state(hf).items()}, strict=True)
    assert stack.lm_head.weight is stack.embedding.weight
    compare_one_layer(stack, hf, hf.transformer.h[0], VOCAB)
