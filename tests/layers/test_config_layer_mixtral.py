"""A Mixtral-8x7B decoder layer against Hugging Face: hidden 4096, GQA 32/8 heads of 128,
RoPE theta 1e6, a mixture of 8 SwiGLU experts with top-2 routing renormalised over the two
(expert intermediate reduced from 14336 to 512 to keep the test small), RMSNorm pre-norms.
Spec and tensor names are models/mixtral's (``families``): its rules split HF's in-memory
layout (router ``mlp.gate``, experts stacked as ``[E, 2I, H]`` gate/up and ``[E, H, I]``
down) into our per-expert projections."""

from __future__ import annotations

import torch
from families import model_spec, our_state
from hf_layer_comparison import compare_one_layer
from transformers import MixtralConfig, MixtralForCausalLM

from tttv2.blocks import TransformerStack
from tttv2.core import MoESpec

VOCAB, MAX_LEN = 256, 128
HIDDEN, EXPERTS, TOP_K, EXPERT_DIM = 4096, 8, 2, 512


def test_mixtral_8x7b_layer_equals_hugging_face() -> None:
    torch.manual_seed(0)
    config = MixtralConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=EXPERT_DIM,
        num_hidden_layers=1,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=32768,
        rms_norm_eps=1e-5,
        rope_theta=1e6,
        sliding_window=None,
        num_local_experts=EXPERTS,
        num_experts_per_tok=TOP_K,
        tie_word_embeddings=False,
    )
    hf = MixtralForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.normal_(1.0, 0.1)
    spec = model_spec(hf)
    moe = spec.layers[0].ffn
    assert isinstance(moe, MoESpec) and (moe.num_experts, moe.top_k, moe.renormalize) == (
        EXPERTS,
        TOP_K,
        True,
    )
    gate_up = hf.state_dict()["model.layers.0.mlp.experts.gate_up_proj"]
    assert gate_up.shape == (
        EXPERTS,
        2 * EXPERT_DIM,
        HIDDEN,
    )  # the stacked layout is what is mapped
    stack = TransformerStack(spec.replace(max_seq_len=MAX_LEN))
    stack.load_state_dict(our_state(hf, spec), strict=True)
    compare_one_layer(stack, hf, hf.model.layers[0], VOCAB)
