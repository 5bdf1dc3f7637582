"""A Phi-3-mini decoder layer against Hugging Face: hidden 3072, 32 heads of 96 (MHA),
SwiGLU 8192, RMSNorm pre-norms, LongRoPE with the published 128k short/long factor lists.

Phi-3 checkpoints store the projections fused: ``self_attn.qkv_proj`` (rows ``[q; k; v]``)
and ``mlp.gate_up_proj`` (rows ``[gate; up]``). Spec and tensor names are models/phi3's
(``families``: its rules split them); fused again (``fuse_projections``), the decode steps
also run through the one-call decoder layer where the CPU has it.

Both RoPE regimes: the real ``original_max_position_embeddings`` (4096: the 9 tokens use
the short factors) and 4 (the sequence is past it from the prompt on: long factors and
their attention factor, as a 128k context would use them)."""

from __future__ import annotations

import pytest
import torch
from families import model_spec, our_state
from hf_layer_comparison import compare_one_layer
from phi3_longrope_factors import PHI3_LONG_FACTOR, PHI3_SHORT_FACTOR
from transformers import Phi3Config, Phi3ForCausalLM

from tttv2.blocks import TransformerStack, fuse_projections

VOCAB, MAX_LEN, MAX_POSITION = 256, 128, 131072
HIDDEN, HEADS, INTERMEDIATE = 3072, 32, 8192


@pytest.mark.parametrize("original_max_position", [4096, 4], ids=["short_factors", "long_factors"])
def test_phi3_mini_layer_with_fused_checkpoint_layout_equals_hugging_face(
    original_max_position: int,
) -> None:
    torch.manual_seed(0)
    config = Phi3Config(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=1,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        max_position_embeddings=MAX_POSITION,
        original_max_position_embeddings=original_max_position,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        pad_token_id=None,
        bos_token_id=None,
        eos_token_id=None,
        rope_scaling={
            "type": "longrope",
            "short_factor": PHI3_SHORT_FACTOR,
            "long_factor": PHI3_LONG_FACTOR,
        },
    )
    hf = Phi3ForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.normal_(1.0, 0.1)
    hf_state = hf.state_dict()
    assert hf_state["model.layers.0.self_attn.qkv_proj.weight"].shape == (3 * HIDDEN, HIDDEN)
    assert hf_state["model.layers.0.mlp.gate_up_proj.weight"].shape == (2 * INTERMEDIATE, HIDDEN)
    spec = model_spec(hf)  # models/phi3's mapping: LongRoPE, its factors and switch point
    rope = spec.layers[0].attention.rope
    assert rope.scaling == "longrope" and rope.original_max_position == original_max_position
    stack = TransformerStack(spec.replace(max_seq_len=MAX_LEN))
    stack.load_state_dict(our_state(hf, spec), strict=True)  # its rules split qkv / gate_up
    assert fuse_projections(stack) == 2  # fused again, decode runs the one-call layer
    compare_one_layer(stack, hf, hf.model.layers[0], VOCAB)
