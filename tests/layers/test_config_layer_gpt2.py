"""A GPT-2-small decoder layer against Hugging Face: hidden 768, MHA with 12 heads of 64
and biases, LayerNorm with bias (eps 1e-5) before attention and MLP, a plain (ungated)
GELU-tanh MLP of 3072 with biases, learned absolute positions (1024) and a tied head.
Spec and tensor names are models/gpt2's (``families``): its rules transpose GPT-2's
``Conv1D`` weights (``[in, out]``) and split the fused ``c_attn`` into q/k/v."""

from __future__ import annotations

import torch
from families import model_spec, our_state
from hf_layer_comparison import compare_one_layer
from transformers import GPT2Config, GPT2LMHeadModel

from tttv2.blocks import TransformerStack

VOCAB, POSITIONS = 256, 1024
HIDDEN, HEADS, INTERMEDIATE = 768, 12, 3072


def test_gpt2_small_layer_equals_hugging_face() -> None:
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=VOCAB,
        n_embd=HIDDEN,
        n_layer=1,
        n_head=HEADS,
        n_positions=POSITIONS,
        n_inner=INTERMEDIATE,
        activation_function="gelu_new",
        layer_norm_epsilon=1e-5,
    )
    hf = GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # HF initialises LayerNorms to (1, 0) and biases to 0: make them matter
        for name, p in hf.named_parameters():
            if "bias" in name or "ln_" in name:
                p.normal_(0.0, 0.3).add_(1.0 if name.endswith("weight") else 0.0)
    spec = model_spec(hf)
    layer = spec.layers[0]
    assert layer.attention.qkv_bias and not layer.ffn.gated and spec.lm_head.tied
    assert spec.embedding.max_positions == POSITIONS and layer.attn_norm.norm_type == "layer"
    stack = TransformerStack(spec)
    stack.load_state_dict(our_state(hf, spec), strict=True)
    assert stack.lm_head.weight is stack.embedding.weight
    compare_one_layer(stack, hf, hf.transformer.h[0], VOCAB)
