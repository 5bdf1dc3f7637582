"""TransformerStack against Hugging Face on tiny random models, weights copied across:
Llama (GQA, Llama-3 RoPE), Gemma 2 (sandwich norms with unit offset, scaled embedding,
attention and final soft-caps, alternating sliding-window layers, tied head), Phi-2
(parallel attention + MLP sharing one LayerNorm, partial rotary, biases everywhere),
GPT-2 (learned positions, LayerNorm, plain GELU MLP, tied head) and Mixtral (MoE).

Two prompts of different lengths are prefilled as one ragged batch over a paged cache,
then decoded token by token; every logits row must match HF run on the whole sequence
(float32, max abs error < 1e-4), and the per-layer hidden states of the prefill must match
HF's ``output_hidden_states``."""

from __future__ import annotations

import re

import pytest
import torch
from patterns_helpers import run_passes

from tttv2.blocks import TransformerStack
from tttv2.core import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    ExecutionMode,
    FeedForwardSpec,
    KVBlockManager,
    LMHeadSpec,
    ModelSpec,
    MoESpec,
    NormSpec,
    RopeSpec,
)

P, D = ExecutionMode.PREFILL, ExecutionMode.DECODE
VOCAB, HIDDEN, HEADS, KV_HEADS, HEAD_DIM, INTER, MAX_LEN = 96, 32, 4, 2, 8, 48, 64


def _rename(hf_state: dict[str, torch.Tensor], rules: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    out = {}
    for name, tensor in hf_state.items():
        for pattern, target in rules:
            if re.fullmatch(pattern, name):
                out[re.sub(pattern, target, name)] = tensor
                break
        else:
            raise AssertionError(f"no rule for HF tensor {name}")
    return out


def _load(stack: TransformerStack, state: dict[str, torch.Tensor]) -> None:
    if stack.spec.lm_head.tied:
        state["lm_head.weight"] = state["embedding.weight"]
    stack.load_state_dict(state, strict=True)


LLAMA_RULES = [
    (r"model\.embed_tokens\.weight", "embedding.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.(\w+)\.(weight|bias)", r"layers.\1.attention.\2.\3"),
    (r"model\.layers\.(\d+)\.mlp\.(\w+)\.weight", r"layers.\1.ffn.\2.weight"),
    (r"model\.layers\.(\d+)\.input_layernorm\.weight", r"layers.\1.attn_norm.weight"),
    (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", r"layers.\1.ffn_norm.weight"),
    (r"model\.norm\.weight", "final_norm.weight"),
    (r"lm_head\.weight", "lm_head.weight"),
]


def llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    rope_parameters = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                       "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
    hf = LlamaForCausalLM(LlamaConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=2,
        num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=MAX_LEN,
        rms_norm_eps=1e-5, rope_parameters=rope_parameters, tie_word_embeddings=False,
    ))
    rope = RopeSpec(head_dim=HEAD_DIM, theta=500000.0, scaling="llama3", factor=8.0, original_max_position=16,
                    low_freq_factor=1.0, high_freq_factor=4.0, max_position=MAX_LEN)
    norm = NormSpec(dim=HIDDEN, eps=1e-5)
    layer = DecoderLayerSpec(
        attention=AttentionSpec(hidden_dim=HIDDEN, num_heads=HEADS, num_kv_heads=KV_HEADS, rope=rope, max_seq_len=MAX_LEN),
        ffn=FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=INTER), attn_norm=norm, ffn_norm=norm,
    )
    spec = ModelSpec(embedding=EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN), layers=(layer, layer),
                     final_norm=norm, lm_head=LMHeadSpec(hidden_dim=HIDDEN, vocab_size=VOCAB), max_seq_len=MAX_LEN)
    return hf, spec, _rename(hf.state_dict(), LLAMA_RULES)


def gemma2():
    from transformers import Gemma2Config, Gemma2ForCausalLM

    window, scalar = 4, 24
    hf = Gemma2ForCausalLM(Gemma2Config(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=3,
        num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM, max_position_embeddings=MAX_LEN,
        sliding_window=window, query_pre_attn_scalar=scalar, attn_logit_softcapping=20.0,
        final_logit_softcapping=15.0, hidden_activation="gelu_pytorch_tanh", rms_norm_eps=1e-6,
    ))
    with torch.no_grad():  # Gemma initialises norm weights at zero; make the offset matter
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.normal_(0, 0.3)
    norm = NormSpec(dim=HIDDEN, eps=1e-6, unit_offset=True)
    rope = RopeSpec(head_dim=HEAD_DIM, max_position=MAX_LEN)

    def layer(kind: str) -> DecoderLayerSpec:
        attention = AttentionSpec(
            hidden_dim=HIDDEN, num_heads=HEADS, num_kv_heads=KV_HEADS, head_dim=HEAD_DIM, rope=rope,
            max_seq_len=MAX_LEN, scale=scalar**-0.5, logit_softcap=20.0,
            sliding_window=window if kind == "sliding_attention" else None,
        )
        return DecoderLayerSpec(
            attention=attention, ffn=FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=INTER, activation="gelu_tanh"),
            attn_norm=norm, post_attn_norm=norm, ffn_norm=norm, post_ffn_norm=norm,
        )

    assert hf.config.layer_types == ["sliding_attention", "full_attention", "sliding_attention"]
    spec = ModelSpec(
        embedding=EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN, scale=HIDDEN**0.5),
        layers=tuple(layer(kind) for kind in hf.config.layer_types),
        final_norm=norm,
        lm_head=LMHeadSpec(hidden_dim=HIDDEN, vocab_size=VOCAB, tied=True, final_logit_softcap=15.0),
        max_seq_len=MAX_LEN,
    )
    rules = [
        (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", r"layers.\1.post_attn_norm.weight"),
        (r"model\.layers\.(\d+)\.pre_feedforward_layernorm\.weight", r"layers.\1.ffn_norm.weight"),
        (r"model\.layers\.(\d+)\.post_feedforward_layernorm\.weight", r"layers.\1.post_ffn_norm.weight"),
        *LLAMA_RULES,
    ]
    return hf, spec, _rename(hf.state_dict(), rules)


def phi():
    from transformers import PhiConfig, PhiForCausalLM

    hf = PhiForCausalLM(PhiConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=2,
        num_attention_heads=HEADS, max_position_embeddings=MAX_LEN, partial_rotary_factor=0.5,
        hidden_act="gelu_new", layer_norm_eps=1e-5,
    ))
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "bias" in name or "layernorm" in name:
                p.normal_(0, 0.3)
    norm = NormSpec(dim=HIDDEN, norm_type="layer", eps=1e-5, bias=True)
    layer = DecoderLayerSpec(
        attention=AttentionSpec(hidden_dim=HIDDEN, num_heads=HEADS, qkv_bias=True, out_bias=True, max_seq_len=MAX_LEN,
                                rope=RopeSpec(head_dim=HEAD_DIM, rotary_dim=HEAD_DIM // 2, max_position=MAX_LEN)),
        ffn=FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=INTER, activation="gelu_tanh", gated=False, bias=True),
        attn_norm=norm,
        parallel=True,
    )
    spec = ModelSpec(embedding=EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN), layers=(layer, layer),
                     final_norm=norm, lm_head=LMHeadSpec(hidden_dim=HIDDEN, vocab_size=VOCAB, bias=True),
                     max_seq_len=MAX_LEN)
    rules = [
        (r"model\.embed_tokens\.weight", "embedding.weight"),
        (r"model\.layers\.(\d+)\.self_attn\.dense\.(weight|bias)", r"layers.\1.attention.o_proj.\2"),
        (r"model\.layers\.(\d+)\.self_attn\.(\w+)\.(weight|bias)", r"layers.\1.attention.\2.\3"),
        (r"model\.layers\.(\d+)\.mlp\.fc1\.(weight|bias)", r"layers.\1.ffn.up_proj.\2"),
        (r"model\.layers\.(\d+)\.mlp\.fc2\.(weight|bias)", r"layers.\1.ffn.down_proj.\2"),
        (r"model\.layers\.(\d+)\.input_layernorm\.(weight|bias)", r"layers.\1.attn_norm.\2"),
        (r"model\.final_layernorm\.(weight|bias)", r"final_norm.\1"),
        (r"lm_head\.(weight|bias)", r"lm_head.\1"),
    ]
    return hf, spec, _rename(hf.state_dict(), rules)


def gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    hf = GPT2LMHeadModel(GPT2Config(
        vocab_size=VOCAB, n_embd=HIDDEN, n_layer=2, n_head=HEADS, n_positions=MAX_LEN, n_inner=INTER,
        activation_function="gelu_new", layer_norm_epsilon=1e-5,
    ))
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "bias" in name or "ln_" in name:
                p.normal_(0, 0.3)
    norm = NormSpec(dim=HIDDEN, norm_type="layer", eps=1e-5, bias=True)
    layer = DecoderLayerSpec(
        attention=AttentionSpec(hidden_dim=HIDDEN, num_heads=HEADS, qkv_bias=True, out_bias=True, max_seq_len=MAX_LEN),
        ffn=FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=INTER, activation="gelu_tanh", gated=False, bias=True),
        attn_norm=norm, ffn_norm=norm,
    )
    spec = ModelSpec(embedding=EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN, max_positions=MAX_LEN),
                     layers=(layer, layer), final_norm=norm,
                     lm_head=LMHeadSpec(hidden_dim=HIDDEN, vocab_size=VOCAB, tied=True), max_seq_len=MAX_LEN)
    state: dict[str, torch.Tensor] = {
        "embedding.weight": hf.transformer.wte.weight,
        "embedding.position_embedding": hf.transformer.wpe.weight,
        "final_norm.weight": hf.transformer.ln_f.weight,
        "final_norm.bias": hf.transformer.ln_f.bias,
    }
    for i, block in enumerate(hf.transformer.h):  # Conv1D stores [in, out]
        q, k, v = block.attn.c_attn.weight.T.chunk(3, dim=0)
        qb, kb, vb = block.attn.c_attn.bias.chunk(3)
        state |= {
            f"layers.{i}.attn_norm.weight": block.ln_1.weight, f"layers.{i}.attn_norm.bias": block.ln_1.bias,
            f"layers.{i}.attention.q_proj.weight": q, f"layers.{i}.attention.q_proj.bias": qb,
            f"layers.{i}.attention.k_proj.weight": k, f"layers.{i}.attention.k_proj.bias": kb,
            f"layers.{i}.attention.v_proj.weight": v, f"layers.{i}.attention.v_proj.bias": vb,
            f"layers.{i}.attention.o_proj.weight": block.attn.c_proj.weight.T,
            f"layers.{i}.attention.o_proj.bias": block.attn.c_proj.bias,
            f"layers.{i}.ffn_norm.weight": block.ln_2.weight, f"layers.{i}.ffn_norm.bias": block.ln_2.bias,
            f"layers.{i}.ffn.up_proj.weight": block.mlp.c_fc.weight.T, f"layers.{i}.ffn.up_proj.bias": block.mlp.c_fc.bias,
            f"layers.{i}.ffn.down_proj.weight": block.mlp.c_proj.weight.T,
            f"layers.{i}.ffn.down_proj.bias": block.mlp.c_proj.bias,
        }
    return hf, spec, {k: v.detach().clone() for k, v in state.items()}


def mixtral():
    from transformers import MixtralConfig, MixtralForCausalLM

    experts, top_k, expert_dim = 4, 2, 16
    hf = MixtralForCausalLM(MixtralConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=expert_dim, num_hidden_layers=2,
        num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=MAX_LEN,
        num_local_experts=experts, num_experts_per_tok=top_k, rms_norm_eps=1e-5, rope_theta=1e6, sliding_window=None,
    ))
    norm = NormSpec(dim=HIDDEN, eps=1e-5)
    layer = DecoderLayerSpec(
        attention=AttentionSpec(hidden_dim=HIDDEN, num_heads=HEADS, num_kv_heads=KV_HEADS, max_seq_len=MAX_LEN,
                                rope=RopeSpec(head_dim=HEAD_DIM, theta=1e6, max_position=MAX_LEN)),
        ffn=MoESpec(hidden_dim=HIDDEN, num_experts=experts, top_k=top_k,
                    expert=FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=expert_dim)),
        attn_norm=norm, ffn_norm=norm,
    )
    spec = ModelSpec(embedding=EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN), layers=(layer, layer),
                     final_norm=norm, lm_head=LMHeadSpec(hidden_dim=HIDDEN, vocab_size=VOCAB), max_seq_len=MAX_LEN)
    hf_state = hf.state_dict()
    state = _rename(
        {k: v for k, v in hf_state.items() if ".experts." not in k},
        [(r"model\.layers\.(\d+)\.mlp\.gate\.weight", r"layers.\1.ffn.gate.weight"), *LLAMA_RULES],
    )
    for i in range(2):  # HF fuses experts into [E, 2I, H] and [E, H, I]; ours are per expert
        gate_up = hf_state[f"model.layers.{i}.mlp.experts.gate_up_proj"]
        down = hf_state[f"model.layers.{i}.mlp.experts.down_proj"]
        for e in range(experts):
            state[f"layers.{i}.ffn.experts.{e}.gate_proj.weight"] = gate_up[e, :expert_dim]
            state[f"layers.{i}.ffn.experts.{e}.up_proj.weight"] = gate_up[e, expert_dim:]
            state[f"layers.{i}.ffn.experts.{e}.down_proj.weight"] = down[e]
    return hf, spec, state


FAMILIES = {"llama": llama, "gemma2": gemma2, "phi": phi, "gpt2": gpt2, "mixtral": mixtral}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_stack_equals_hugging_face(family: str) -> None:
    torch.manual_seed(0)
    hf, spec, state = FAMILIES[family]()
    hf.eval()
    stack = TransformerStack(spec)
    _load(stack, state)
    tokens = {0: torch.randint(0, VOCAB, (13,)).tolist(), 1: torch.randint(0, VOCAB, (6,)).tolist()}
    with torch.no_grad():
        expected = {s: hf(torch.tensor([t]), output_hidden_states=True) for s, t in tokens.items()}
        # ragged prefill (9 and 4 tokens), then decode one token per sequence per pass
        passes = [([(0, 9), (1, 4)], P), ([(0, 1), (1, 1)], D), ([(0, 1), (1, 1)], D), ([(0, 1)], D), ([(0, 1)], D)]
        rows = run_passes(stack, tokens, passes)
    for (s, p), row in rows.items():
        error = (row - expected[s].logits[0, p]).abs().max().item()
        assert error < 1e-4, f"{family}: sequence {s} position {p}: max abs error {error}"
    assert torch.equal(rows[(0, 12)].argmax(), expected[0].logits[0, 12].argmax())

    # per-layer hidden states of a one-sequence prefill, HF's convention
    with torch.no_grad():
        ids = torch.tensor(tokens[0])
        meta = KVBlockManager(16, 8, MAX_LEN).prepare([0], [len(ids)], P, logits="all")
        _, hidden = stack(ids, meta, stack.new_cache(16, 8), output_hidden_states=True)
    theirs = expected[0].hidden_states
    assert len(hidden) == len(theirs) == spec.num_layers + 1
    for i, (ours, ref) in enumerate(zip(hidden, theirs, strict=True)):
        error = (ours - ref[0]).abs().max().item()
        assert error < 1e-4, f"{family}: hidden state {i}: max abs error {error}"
