"""One decoder layer at real model sizes (plus a small vocabulary) against Hugging Face,
weights shared or copied across (Llama and Gemma 2 through their model projects' mappings,
``families``; Phi-2, which has no project, through the rules below): Llama-3.1-8B (GQA 32/8, SwiGLU 14336, llama3 RoPE),
Gemma-2-2B (sandwich norms with unit offset, GeGLU 9216, head_dim 256, soft-caps, scaled
embedding, tied head) and Phi-2 (parallel attention + MLP, partial rotary 32 of 80, biases).

A 7-token prompt is prefilled, then two tokens are decoded; float32 logits and hidden states
must match HF run on the whole sequence."""

from __future__ import annotations

import torch
from families import hf_state, model_spec, our_state
from hf_layer_comparison import rename
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PhiConfig,
    PhiForCausalLM,
)
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

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
    NormSpec,
    RopeSpec,
)

VOCAB, MAX_LEN = 256, 128


def _compare(stack: TransformerStack, hf: torch.nn.Module, tol: float = 1e-4) -> None:
    ids = torch.randint(0, VOCAB, (9,))
    with torch.no_grad():
        expected = hf(ids[None], output_hidden_states=True)
        cache = stack.new_cache(8, 16)
        blocks = KVBlockManager(8, 16, MAX_LEN)
        meta = blocks.prepare([0], [7], ExecutionMode.PREFILL, logits="all")
        logits, hidden = stack(ids[:7], meta, cache, output_hidden_states=True)
        rows = [logits]
        for p in (7, 8):
            meta = blocks.prepare([0], [1], ExecutionMode.DECODE)
            rows.append(stack(ids[p : p + 1], meta, cache))
    error = (torch.cat(rows) - expected.logits[0]).abs().max().item()
    assert error < tol, f"logits max abs error {error}"
    for i, (ours, ref) in enumerate(zip(hidden, expected.hidden_states, strict=True)):
        error = (ours - ref[0, :7]).abs().max().item()
        assert error < tol, f"hidden state {i}: max abs error {error}"


def test_llama31_8b_layer_equals_hugging_face() -> None:
    """Spec and tensor names are models/llama3's (``families``)."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=1,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    )
    with torch.device("meta"):  # HF shares our tensors: the 8B layer is held once
        hf = LlamaForCausalLM(config)
    spec = model_spec(hf)
    assert (
        spec.layers[0].attention.rope.scaling == "llama3"
        and spec.layers[0].attention.num_kv_heads == 8
    )
    stack = TransformerStack(spec.replace(max_seq_len=MAX_LEN))
    with torch.no_grad():
        for name, p in stack.named_parameters():
            if "norm" in name:
                p.normal_(1.0, 0.1)
    hf.load_state_dict(hf_state(hf, spec, stack.state_dict()), strict=True, assign=True)
    hf.model.rotary_emb = LlamaRotaryEmbedding(config)  # its buffers are not in the state dict
    assert not any(t.is_meta for t in [*hf.parameters(), *hf.buffers()])
    _compare(stack, hf.eval())


def test_gemma2_2b_layer_equals_hugging_face() -> None:
    """Spec and tensor names are models/gemma2's (``families``)."""
    torch.manual_seed(0)
    config = Gemma2Config(
        vocab_size=VOCAB,
        hidden_size=2304,
        intermediate_size=9216,
        num_hidden_layers=1,
        num_attention_heads=8,
        num_key_value_heads=4,
        head_dim=256,
        max_position_embeddings=8192,
        sliding_window=4096,
        query_pre_attn_scalar=256,
        attn_logit_softcapping=50.0,
        final_logit_softcapping=30.0,
        hidden_activation="gelu_pytorch_tanh",
        rms_norm_eps=1e-6,
    )
    hf = Gemma2ForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.normal_(0.0, 0.3)
    spec = model_spec(hf)
    layer = spec.layers[0]
    assert layer.attention.logit_softcap == 50.0 and layer.post_ffn_norm is not None
    assert spec.lm_head.final_logit_softcap == 30.0 and spec.embedding.scale == 2304**0.5
    stack = TransformerStack(spec.replace(max_seq_len=MAX_LEN))
    stack.load_state_dict(our_state(hf, spec), strict=True)
    assert stack.lm_head.weight is stack.embedding.weight
    _compare(stack, hf)


def test_phi2_parallel_layer_equals_hugging_face() -> None:
    torch.manual_seed(0)
    config = PhiConfig(
        vocab_size=VOCAB,
        hidden_size=2560,
        intermediate_size=10240,
        num_hidden_layers=1,
        num_attention_heads=32,
        max_position_embeddings=2048,
        partial_rotary_factor=0.4,
        hidden_act="gelu_new",
        layer_norm_eps=1e-5,
    )
    hf = PhiForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "bias" in name or "layernorm" in name:
                p.normal_(0, 0.2)
    norm = NormSpec(dim=2560, norm_type="layer", eps=1e-5, bias=True)
    layer = DecoderLayerSpec(
        attention=AttentionSpec(
            hidden_dim=2560,
            num_heads=32,
            qkv_bias=True,
            out_bias=True,
            max_seq_len=2048,
            rope=RopeSpec(head_dim=80, rotary_dim=32, max_position=2048),
        ),
        ffn=FeedForwardSpec(
            hidden_dim=2560, intermediate_dim=10240, activation="gelu_tanh", gated=False, bias=True
        ),
        attn_norm=norm,
        parallel=True,
    )
    spec = ModelSpec(
        embedding=EmbeddingSpec(vocab_size=VOCAB, hidden_dim=2560),
        layers=(layer,),
        final_norm=norm,
        lm_head=LMHeadSpec(hidden_dim=2560, vocab_size=VOCAB, bias=True),
        max_seq_len=MAX_LEN,
    )
    stack = TransformerStack(spec)
    rules = [
        (r"embedding\.weight", "model.embed_tokens.weight"),
        (r"layers\.(\d+)\.attention\.o_proj\.(weight|bias)", r"model.layers.\1.self_attn.dense.\2"),
        (r"layers\.(\d+)\.attention\.(\w+)\.(weight|bias)", r"model.layers.\1.self_attn.\2.\3"),
        (r"layers\.(\d+)\.ffn\.up_proj\.(weight|bias)", r"model.layers.\1.mlp.fc1.\2"),
        (r"layers\.(\d+)\.ffn\.down_proj\.(weight|bias)", r"model.layers.\1.mlp.fc2.\2"),
        (r"layers\.(\d+)\.attn_norm\.(weight|bias)", r"model.layers.\1.input_layernorm.\2"),
        (r"final_norm\.(weight|bias)", r"model.final_layernorm.\1"),
        (r"lm_head\.(weight|bias)", r"lm_head.\1"),
    ]
    hf_state = hf.state_dict()
    names = {
        ours: hf_name for hf_name, ours in rename({n: n for n in stack.state_dict()}, rules).items()
    }
    stack.load_state_dict({ours: hf_state[hf_name] for ours, hf_name in names.items()})
    _compare(stack, hf)
