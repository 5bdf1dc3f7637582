"""Shared by the fused/transposed tensor-parallel tests: tiny Phi-3 (q/k/v fused in
``qkv_proj``, gate and up in ``gate_up_proj``) and GPT-2 (``Conv1D`` weights stored
``[in, out]``, q/k/v fused in ``c_attn``) checkpoints written by transformers'
``save_pretrained``, the specs and rename rules a model project would write for them, and
the worker the spawned ranks run (module level, so the workers can import it)."""

from __future__ import annotations

from pathlib import Path

import torch
from tp_helpers import generate

from tttv2.blocks import TransformerStack
from tttv2.blocks.parallel import ShardedTransformerStack, load_shard
from tttv2.blocks.weights import RenameRules, SafetensorsCheckpoint, Split, load_weights, transpose
from tttv2.blocks.weights.sharded_loading import shard_placements
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

HIDDEN, HEADS, HEAD_DIM, INTER, LAYERS, MAX_LEN = 64, 4, 16, 128, 2, 64
VOCAB = 101  # odd: the vocabulary does not divide by 2 (the last rank holds fewer rows)


# -- Phi-3 ----------------------------------------------------------------------------------
def phi3_spec(kv_heads: int) -> ModelSpec:
    norm = NormSpec(dim=HIDDEN, eps=1e-5)
    rope = RopeSpec(head_dim=HEAD_DIM, theta=10000.0, max_position=MAX_LEN)
    attention = AttentionSpec(
        hidden_dim=HIDDEN,
        num_heads=HEADS,
        num_kv_heads=kv_heads,
        head_dim=HEAD_DIM,
        rope=rope,
        max_seq_len=MAX_LEN,
    )
    ffn = FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=INTER, activation="silu")
    layer = DecoderLayerSpec(attention=attention, ffn=ffn, attn_norm=norm, ffn_norm=norm)
    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN),
        layers=(layer,) * LAYERS,
        final_norm=norm,
        lm_head=LMHeadSpec(hidden_dim=HIDDEN, vocab_size=VOCAB, tied=False),
        max_seq_len=MAX_LEN,
    )


def phi3_rules(spec: ModelSpec) -> RenameRules:
    """As models/phi3 writes them: ``qkv_proj`` split into q, k, v of unequal sizes (GQA),
    ``gate_up_proj`` into gate then up."""
    a = spec.layers[0].attention
    assert a.num_kv_heads is not None and a.head_dim is not None
    q, kv = a.num_heads * a.head_dim, a.num_kv_heads * a.head_dim
    layer = r"model\.layers\.(\d+)\."
    qkv = Split([rf"layers.\1.attention.{p}_proj.weight" for p in "qkv"], sizes=(q, kv, kv))
    gate_up = Split([r"layers.\1.ffn.gate_proj.weight", r"layers.\1.ffn.up_proj.weight"])
    return RenameRules(
        [
            (r"model\.embed_tokens\.weight", "embedding.weight"),
            (layer + r"self_attn\.qkv_proj\.weight", qkv),
            (layer + r"self_attn\.o_proj\.weight", r"layers.\1.attention.o_proj.weight"),
            (layer + r"mlp\.gate_up_proj\.weight", gate_up),
            (layer + r"mlp\.down_proj\.weight", r"layers.\1.ffn.down_proj.weight"),
            (layer + r"input_layernorm\.weight", r"layers.\1.attn_norm.weight"),
            (layer + r"post_attention_layernorm\.weight", r"layers.\1.ffn_norm.weight"),
            (r"model\.norm\.weight", "final_norm.weight"),
            (r"lm_head\.weight", "lm_head.weight"),
        ]
    )


def phi3_checkpoint(folder: Path, kv_heads: int) -> Path:
    from transformers import Phi3Config, Phi3ForCausalLM

    torch.manual_seed(0)
    config = Phi3Config(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=kv_heads, max_position_embeddings=MAX_LEN,
        original_max_position_embeddings=MAX_LEN, rms_norm_eps=1e-5, initializer_range=0.3,
        pad_token_id=None, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
    )  # fmt: skip
    return _save(Phi3ForCausalLM(config), folder)


# -- GPT-2 ----------------------------------------------------------------------------------
def gpt2_spec() -> ModelSpec:
    norm = NormSpec(dim=HIDDEN, norm_type="layer", eps=1e-5, bias=True)
    layer = DecoderLayerSpec(
        attention=AttentionSpec(
            hidden_dim=HIDDEN, num_heads=HEADS, qkv_bias=True, out_bias=True, max_seq_len=MAX_LEN
        ),
        ffn=FeedForwardSpec(
            hidden_dim=HIDDEN,
            intermediate_dim=INTER,
            activation="gelu_tanh",
            gated=False,
            bias=True,
        ),
        attn_norm=norm,
        ffn_norm=norm,
    )
    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN, max_positions=MAX_LEN),
        layers=(layer,) * LAYERS,
        final_norm=norm,
        lm_head=LMHeadSpec(hidden_dim=HIDDEN, vocab_size=VOCAB, tied=True),
        max_seq_len=MAX_LEN,
    )


def gpt2_rules(spec: ModelSpec) -> RenameRules:
    """As models/gpt2 writes them: ``Conv1D`` weights transposed, ``c_attn`` split into q, k, v."""
    layer = r"(?:transformer\.)?h\.(\d+)\."
    qkv = Split([rf"layers.\1.attention.{p}_proj.\2" for p in "qkv"])
    return RenameRules(
        [
            (r"(?:transformer\.)?wte\.weight", "embedding.weight"),
            (r"(?:transformer\.)?wpe\.weight", "embedding.position_embedding"),
            (layer + r"ln_1\.(weight|bias)", r"layers.\1.attn_norm.\2"),
            (layer + r"ln_2\.(weight|bias)", r"layers.\1.ffn_norm.\2"),
            (layer + r"attn\.c_attn\.(weight)", qkv, transpose),
            (layer + r"attn\.c_attn\.(bias)", qkv),
            (layer + r"attn\.c_proj\.weight", r"layers.\1.attention.o_proj.weight", transpose),
            (layer + r"attn\.c_proj\.bias", r"layers.\1.attention.o_proj.bias"),
            (layer + r"mlp\.c_fc\.weight", r"layers.\1.ffn.up_proj.weight", transpose),
            (layer + r"mlp\.c_fc\.bias", r"layers.\1.ffn.up_proj.bias"),
            (layer + r"mlp\.c_proj\.weight", r"layers.\1.ffn.down_proj.weight", transpose),
            (layer + r"mlp\.c_proj\.bias", r"layers.\1.ffn.down_proj.bias"),
            (layer + r"attn\.(?:masked_)?bias", None),
            (r"(?:transformer\.)?ln_f\.(weight|bias)", r"final_norm.\1"),
            (r"lm_head\.weight", None),  # tied: the head is the embedding
        ]
    )


def gpt2_checkpoint(folder: Path) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=VOCAB, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_positions=MAX_LEN,
        n_inner=INTER, activation_function="gelu_new", layer_norm_epsilon=1e-5,
        initializer_range=0.3, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    return _save(GPT2LMHeadModel(config), folder)


def _save(hf: torch.nn.Module, folder: Path) -> Path:
    """Biases and norms randomised (not the identity or zero, which would hide a wrong
    slice of them), saved with ``save_pretrained`` (safetensors)."""
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if p.dim() == 1:
                p.normal_(1.0 if "norm" in name or "ln_" in name else 0.0, 0.2)
    hf.save_pretrained(folder, safe_serialization=True)
    return folder


MODELS = {
    "phi3_gqa": (lambda: phi3_spec(2), phi3_rules),
    "phi3_mqa": (lambda: phi3_spec(1), phi3_rules),
    "gpt2": (gpt2_spec, gpt2_rules),
}


def unsharded(name: str, folder: str) -> TransformerStack:
    """The 1-rank model: the whole checkpoint through the same rules (load_weights)."""
    make_spec, make_rules = MODELS[name]
    spec = make_spec()
    stack = TransformerStack(spec)
    with SafetensorsCheckpoint(folder) as checkpoint:
        load_weights(stack, checkpoint, make_rules(spec))  # type: ignore[arg-type]
    return stack.eval()


# -- worker (run on every rank by tttv2.hw.mesh.launch) -------------------------------------
def run_fused(mesh, jobs: list[tuple[str, str]]) -> dict[str, dict[str, object]]:
    """Each model: this rank's shard read through the rules' placements, then the run."""
    out = {}
    for name, folder in jobs:
        make_spec, make_rules = MODELS[name]
        spec = make_spec()
        stack = ShardedTransformerStack(spec, mesh).eval()
        report = load_shard(stack, folder, stack.plan.tensors(), shard_placements(make_rules(spec)))
        out[name] = generate(stack) | {
            "rank": mesh.rank,
            "parameter_bytes": stack.parameter_bytes(),
            "bytes_read": report.bytes_read,
            "checkpoint_bytes": report.checkpoint_bytes,
        }
    return out
