"""TransformerStack against Hugging Face on a tiny random Phi-2 (parallel attention + MLP
sharing one LayerNorm, partial rotary, biases everywhere), weights copied across. Phi-2 has
no model project, so its mapping lives here; the families that have one (Llama, Gemma 2,
GPT-2, Mixtral, ...) are checked on the workspace's packages with their projects' own
mappings by the configuration tier (tests/patterns/test_families_on_workspace.py), never
with a copy written in a test.

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
    NormSpec,
    RopeSpec,
)

P, D = ExecutionMode.PREFILL, ExecutionMode.DECODE
VOCAB, HIDDEN, HEADS, KV_HEADS, HEAD_DIM, INTER, MAX_LEN = 96, 32, 4, 2, 8, 48, 64


def _rename(
    hf_state: dict[str, torch.Tensor], rules: list[tuple[str, str]]
) -> dict[str, torch.Tensor]:
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


def phi():
    from transformers import PhiConfig, PhiForCausalLM

    hf = PhiForCausalLM(
        PhiConfig(
            vocab_size=VOCAB,
            hidden_size=HIDDEN,
            intermediate_size=INTER,
            num_hidden_layers=2,
            num_attention_heads=HEADS,
            max_position_embeddings=MAX_LEN,
            partial_rotary_factor=0.5,
            hidden_act="gelu_new",
            layer_norm_eps=1e-5,
        )
    )
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "bias" in name or "layernorm" in name:
                p.normal_(0, 0.3)
    norm = NormSpec(dim=HIDDEN, norm_type="layer", eps=1e-5, bias=True)
    layer = DecoderLayerSpec(
        attention=AttentionSpec(
            hidden_dim=HIDDEN,
            num_heads=HEADS,
            qkv_bias=True,
            out_bias=True,
            max_seq_len=MAX_LEN,
            rope=RopeSpec(head_dim=HEAD_DIM, rotary_dim=HEAD_DIM // 2, max_position=MAX_LEN),
        ),
        ffn=FeedForwardSpec(
            hidden_dim=HIDDEN,
            intermediate_dim=INTER,
            activation="gelu_tanh",
            gated=False,
            bias=True,
        ),
        attn_norm=norm,
        parallel=True,
    )
    spec = ModelSpec(
        embedding=EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN),
        layers=(layer, layer),
        final_norm=norm,
        lm_head=LMHeadSpec(hidden_dim=HIDDEN, vocab_size=VOCAB, bias=True),
        max_seq_len=MAX_LEN,
    )
    rules = [
        (r"model\.embed_tokens\.weight", "embedding.weight"),
        (
            r"model\.layers\.(\d+)\.self_attn\.dense\.(weight|bias)",
            r"layers.\1.attention.o_proj.\2",
        ),
        (r"model\.layers\.(\d+)\.self_attn\.(\w+)\.(weight|bias)", r"layers.\1.attention.\2.\3"),
        (r"model\.layers\.(\d+)\.mlp\.fc1\.(weight|bias)", r"layers.\1.ffn.up_proj.\2"),
        (r"model\.layers\.(\d+)\.mlp\.fc2\.(weight|bias)", r"layers.\1.ffn.down_proj.\2"),
        (r"model\.layers\.(\d+)\.input_layernorm\.(weight|bias)", r"layers.\1.attn_norm.\2"),
        (r"model\.final_layernorm\.(weight|bias)", r"final_norm.\1"),
        (r"lm_head\.(weight|bias)", r"lm_head.\1"),
    ]
    return hf, spec, _rename(hf.state_dict(), rules)


FAMILIES = {"phi": phi}


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
        passes = [
            ([(0, 9), (1, 4)], P),
            ([(0, 1), (1, 1)], D),
            ([(0, 1), (1, 1)], D),
            ([(0, 1)], D),
            ([(0, 1)], D),
        ]
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
