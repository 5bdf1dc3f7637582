"""A Mixtral-8x7B decoder layer against Hugging Face: hidden 4096, GQA 32/8 heads of 128,
RoPE theta 1e6, a mixture of 8 SwiGLU experts with top-2 routing renormalised over the two
(expert intermediate reduced from 14336 to 512 to keep the test small), RMSNorm pre-norms.
HF's checkpoint layout (router ``mlp.gate``, experts fused as ``[E, 2I, H]`` gate/up and
``[E, H, I]`` down) is split into our per-expert projections."""

from __future__ import annotations

import torch
from hf_layer_comparison import compare_one_layer, rename
from transformers import MixtralConfig, MixtralForCausalLM

from tttv2.blocks import TransformerStack
from tttv2.core import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    FeedForwardSpec,
    LMHeadSpec,
    ModelSpec,
    MoESpec,
    NormSpec,
    RopeSpec,
)

VOCAB, MAX_LEN = 256, 128
HIDDEN, EXPERTS, TOP_K, EXPERT_DIM = 4096, 8, 2, 512
RULES = [
    (r"model\.embed_tokens\.weight", "embedding.weight"),
    (r"model\.layers\.0\.self_attn\.(\w+)\.weight", r"layers.0.attention.\1.weight"),
    (r"model\.layers\.0\.mlp\.gate\.weight", "layers.0.ffn.gate.weight"),
    (r"model\.layers\.0\.input_layernorm\.weight", "layers.0.attn_norm.weight"),
    (r"model\.layers\.0\.post_attention_layernorm\.weight", "layers.0.ffn_norm.weight"),
    (r"model\.norm\.weight", "final_norm.weight"),
    (r"lm_head\.weight", "lm_head.weight"),
]


def test_mixtral_8x7b_layer_equals_hugging_face() -> None:
    torch.manual_seed(0)
    config = MixtralConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=EXPERT_DIM, num_hidden_layers=1,
        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=32768, rms_norm_eps=1e-5,
        rope_theta=1e6, sliding_window=None, num_local_experts=EXPERTS, num_experts_per_tok=TOP_K,
        tie_word_embeddings=False,
    )
    hf = MixtralForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.normal_(1.0, 0.1)
    norm = NormSpec(dim=HIDDEN, eps=1e-5)
    layer = DecoderLayerSpec(
        attention=AttentionSpec(hidden_dim=HIDDEN, num_heads=32, num_kv_heads=8, max_seq_len=MAX_LEN,
                                rope=RopeSpec(head_dim=128, theta=1e6, max_position=32768)),
        ffn=MoESpec(hidden_dim=HIDDEN, num_experts=EXPERTS, top_k=TOP_K,
                    expert=FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=EXPERT_DIM)),
        attn_norm=norm, ffn_norm=norm,
    )
    spec = ModelSpec(embedding=EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN), layers=(layer,), final_norm=norm,
                     lm_head=LMHeadSpec(hidden_dim=HIDDEN, vocab_size=VOCAB), max_seq_len=MAX_LEN)
    stack = TransformerStack(spec)

    hf_state = hf.state_dict()
    state = rename({k: v for k, v in hf_state.items() if ".experts." not in k}, RULES)
    gate_up, down = hf_state["model.layers.0.mlp.experts.gate_up_proj"], hf_state["model.layers.0.mlp.experts.down_proj"]
    assert gate_up.shape == (EXPERTS, 2 * EXPERT_DIM, HIDDEN) and down.shape == (EXPERTS, HIDDEN, EXPERT_DIM)
    for e in range(EXPERTS):
        state[f"layers.0.ffn.experts.{e}.gate_proj.weight"] = gate_up[e, :EXPERT_DIM]
        state[f"layers.0.ffn.experts.{e}.up_proj.weight"] = gate_up[e, EXPERT_DIM:]
        state[f"layers.0.ffn.experts.{e}.down_proj.weight"] = down[e]
    stack.load_state_dict(state, strict=True)
    compare_one_layer(stack, hf, hf.model.layers[0], VOCAB)
