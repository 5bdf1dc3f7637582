"""A Phi-3-mini decoder layer against Hugging Face: hidden 3072, 32 heads of 96 (MHA),
SwiGLU 8192, RMSNorm pre-norms, LongRoPE with the published 128k short/long factor lists.

Phi-3 checkpoints store the projections fused: ``self_attn.qkv_proj`` (rows ``[q; k; v]``)
and ``mlp.gate_up_proj`` (rows ``[gate; up]``). They load as they are into our blocks
once those are fused (``fuse_projections``: ``qkv_proj``, ``gate_up_proj``); fused, the
decode steps also run through the one-call decoder layer where the CPU has it.

Both RoPE regimes: the real ``original_max_position_embeddings`` (4096: the 9 tokens use
the short factors) and 4 (the sequence is past it from the prompt on: long factors and
their attention factor, as a 128k context would use them)."""

from __future__ import annotations

import pytest
import torch
from hf_layer_comparison import compare_one_layer, rename
from phi3_longrope_factors import PHI3_LONG_FACTOR, PHI3_SHORT_FACTOR
from transformers import Phi3Config, Phi3ForCausalLM

from tttv2.blocks import TransformerStack, fuse_projections
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

VOCAB, MAX_LEN, MAX_POSITION = 256, 128, 131072
HIDDEN, HEADS, HEAD_DIM, INTERMEDIATE = 3072, 32, 96, 8192
RULES = [
    (r"model\.embed_tokens\.weight", "embedding.weight"),
    (r"model\.layers\.0\.self_attn\.(qkv_proj|o_proj)\.weight", r"layers.0.attention.\1.weight"),
    (r"model\.layers\.0\.mlp\.(gate_up_proj|down_proj)\.weight", r"layers.0.ffn.\1.weight"),
    (r"model\.layers\.0\.input_layernorm\.weight", "layers.0.attn_norm.weight"),
    (r"model\.layers\.0\.post_attention_layernorm\.weight", "layers.0.ffn_norm.weight"),
    (r"model\.norm\.weight", "final_norm.weight"),
    (r"lm_head\.weight", "lm_head.weight"),
]


@pytest.mark.parametrize("original_max_position", [4096, 4], ids=["short_factors", "long_factors"])
def test_phi3_mini_layer_with_fused_checkpoint_layout_equals_hugging_face(original_max_position: int) -> None:
    torch.manual_seed(0)
    config = Phi3Config(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTERMEDIATE, num_hidden_layers=1,
        num_attention_heads=HEADS, num_key_value_heads=HEADS, max_position_embeddings=MAX_POSITION,
        original_max_position_embeddings=original_max_position, rms_norm_eps=1e-5, tie_word_embeddings=False,
        pad_token_id=None, bos_token_id=None, eos_token_id=None,
        rope_scaling={"type": "longrope", "short_factor": PHI3_SHORT_FACTOR, "long_factor": PHI3_LONG_FACTOR},
    )
    hf = Phi3ForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.normal_(1.0, 0.1)
    rope = RopeSpec(head_dim=HEAD_DIM, max_position=MAX_POSITION, scaling="longrope",
                    original_max_position=original_max_position,
                    short_factor=PHI3_SHORT_FACTOR, long_factor=PHI3_LONG_FACTOR)
    norm = NormSpec(dim=HIDDEN, eps=1e-5)
    layer = DecoderLayerSpec(
        attention=AttentionSpec(hidden_dim=HIDDEN, num_heads=HEADS, rope=rope, max_seq_len=MAX_LEN),
        ffn=FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=INTERMEDIATE), attn_norm=norm, ffn_norm=norm,
    )
    spec = ModelSpec(embedding=EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN), layers=(layer,), final_norm=norm,
                     lm_head=LMHeadSpec(hidden_dim=HIDDEN, vocab_size=VOCAB), max_seq_len=MAX_LEN)
    stack = TransformerStack(spec)
    assert fuse_projections(stack) == 2
    hf_state = hf.state_dict()
    assert hf_state["model.layers.0.self_attn.qkv_proj.weight"].shape == (3 * HIDDEN, HIDDEN)
    assert hf_state["model.layers.0.mlp.gate_up_proj.weight"].shape == (2 * INTERMEDIATE, HIDDEN)
    stack.load_state_dict(rename(hf_state, RULES), strict=True)
    compare_one_layer(stack, hf, hf.model.layers[0], VOCAB)
