"""Shared by the tensor-parallel tests: tiny Llama-shaped specs, a checkpoint written with
Hugging Face names, a prefill + greedy decode + cached-prefill run over a paged cache, and
the worker functions the spawned ranks run (module level, so workers can import them)."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import save_file

from tttv2.blocks import TransformerStack
from tttv2.blocks.parallel import ShardedTransformerStack, load_shard
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

HIDDEN, HEAD_DIM, MAX_LEN = 64, 16, 64
PROMPTS = ([5, 17, 3, 99, 42, 8], [61, 2, 77])
CONTINUATION = [11, 23, 35]  # prefilled onto sequence 0 after decoding (cached context)
DECODE_STEPS = 4

# the model's knowledge (checkpoint names -> module names) lives with the model, here the test
HF_RULES = [
    (r"model\.embed_tokens\.weight", "embedding.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.(\w+)\.(weight|bias)", r"layers.\1.attention.\2.\3"),
    (r"model\.layers\.(\d+)\.mlp\.(.+)", r"layers.\1.ffn.\2"),
    (r"model\.layers\.(\d+)\.input_layernorm\.weight", r"layers.\1.attn_norm.weight"),
    (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", r"layers.\1.ffn_norm.weight"),
    (r"model\.norm\.weight", "final_norm.weight"),
    (r"lm_head\.(weight|bias)", r"lm_head.\1"),
]
MODULE_RULES = [
    (r"embedding\.weight", "model.embed_tokens.weight"),
    (r"layers\.(\d+)\.attention\.(.+)", r"model.layers.\1.self_attn.\2"),
    (r"layers\.(\d+)\.ffn\.(.+)", r"model.layers.\1.mlp.\2"),
    (r"layers\.(\d+)\.attn_norm\.weight", r"model.layers.\1.input_layernorm.weight"),
    (r"layers\.(\d+)\.ffn_norm\.weight", r"model.layers.\1.post_attention_layernorm.weight"),
    (r"final_norm\.weight", "model.norm.weight"),
    (r"lm_head\.(weight|bias)", r"lm_head.\1"),
]


def _apply(rules: list[tuple[str, str]], name: str) -> str:
    for pattern, target in rules:
        if re.fullmatch(pattern, name):
            return re.sub(pattern, target, name)
    raise AssertionError(f"no rule for {name}")


def hf_to_module(name: str) -> str:
    return _apply(HF_RULES, name)


def llama_spec(
    *,
    heads: int = 4,
    kv_heads: int = 2,
    vocab: int = 101,
    layers: int = 2,
    inter: int = 128,
    qkv_bias: bool = False,
    out_bias: bool = False,
    ffn_bias: bool = False,
    tied: bool = False,
    moe: bool = False,
    softcap: float | None = None,
    embed_scale: float | None = None,
) -> ModelSpec:
    rope = RopeSpec(head_dim=HEAD_DIM, theta=10000.0, max_position=MAX_LEN)
    norm = NormSpec(dim=HIDDEN, eps=1e-5)
    attention = AttentionSpec(
        hidden_dim=HIDDEN,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=HEAD_DIM,
        rope=rope,
        max_seq_len=MAX_LEN,
        qkv_bias=qkv_bias,
        out_bias=out_bias,
    )
    ffn: FeedForwardSpec | MoESpec = FeedForwardSpec(
        hidden_dim=HIDDEN, intermediate_dim=inter, bias=ffn_bias
    )
    if moe:
        expert = FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=32)
        ffn = MoESpec(
            hidden_dim=HIDDEN,
            num_experts=4,
            top_k=2,
            expert=expert,
            shared_expert=replace(expert, intermediate_dim=64),
            shared_expert_gate=True,
        )
    layer = DecoderLayerSpec(attention=attention, ffn=ffn, attn_norm=norm, ffn_norm=norm)
    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=vocab, hidden_dim=HIDDEN, scale=embed_scale),
        layers=(layer,) * layers,
        final_norm=norm,
        lm_head=LMHeadSpec(
            hidden_dim=HIDDEN, vocab_size=vocab, tied=tied, final_logit_softcap=softcap
        ),
        max_seq_len=MAX_LEN,
    )


def reference_stack(spec: ModelSpec, seed: int = 0) -> TransformerStack:
    """The unsharded model with seeded random weights (norms and biases not trivial)."""
    torch.manual_seed(seed)
    stack = TransformerStack(spec)
    with torch.no_grad():
        for name, p in stack.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.normal_(0.5 if "norm" in name else 0.0, 0.2)
    return stack.eval()


def save_checkpoint(stack: TransformerStack, folder: Path) -> Path:
    """The stack's weights as a safetensors file with Hugging Face names (a tied head
    stores the embedding once, as HF does)."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {_apply(MODULE_RULES, n): p.detach().contiguous() for n, p in stack.named_parameters()}
    path = folder / "model.safetensors"
    save_file(state, str(path))
    return path


@torch.no_grad()
def generate(
    stack: torch.nn.Module, block_size: int = 4, num_blocks: int = 32
) -> dict[str, object]:
    """Ragged prefill of PROMPTS (logits of every token, per-layer hidden states), greedy
    decode of both sequences, then a cached-context prefill of CONTINUATION on sequence 0."""
    cache = stack.new_cache(num_blocks, block_size)
    blocks = KVBlockManager(num_blocks, block_size, stack.spec.max_seq_len)
    ids = torch.tensor([t for p in PROMPTS for t in p])
    meta = blocks.prepare([0, 1], [len(p) for p in PROMPTS], ExecutionMode.PREFILL, logits="all")
    prefill, hidden = stack(ids, meta, cache, output_hidden_states=True)
    ends = torch.tensor([len(PROMPTS[0]) - 1, len(PROMPTS[0]) + len(PROMPTS[1]) - 1])
    nxt = prefill[ends].argmax(-1)
    tokens = [[t] for t in nxt.tolist()]
    decode = []
    for _ in range(DECODE_STEPS):
        meta = blocks.prepare([0, 1], [1, 1], ExecutionMode.DECODE)
        logits = stack(nxt, meta, cache)
        decode.append(logits)
        nxt = logits.argmax(-1)
        for seq, t in zip(tokens, nxt.tolist(), strict=True):
            seq.append(t)
    meta = blocks.prepare([0], [len(CONTINUATION)], ExecutionMode.PREFILL, logits="all")
    cont = stack(torch.tensor(CONTINUATION), meta, cache)
    return {
        "prefill": prefill,
        "hidden": torch.stack(hidden),
        "decode": torch.stack(decode),
        "continuation": cont,
        "tokens": tokens,
    }


# -- worker functions (run on every rank by tttv2.hw.mesh.launch) ---------------------------
def run_sharded(mesh, spec: ModelSpec, checkpoint: str) -> dict[str, object]:
    stack = ShardedTransformerStack(spec, mesh).eval()
    report = load_shard(stack, checkpoint, stack.plan.tensors(), hf_to_module)
    mesh.reset_comm_stats()
    out = generate(stack)
    out |= {
        "rank": mesh.rank,
        "parameter_bytes": stack.parameter_bytes(),
        "bytes_read": report.bytes_read,
        "checkpoint_bytes": report.checkpoint_bytes,
        "comm_calls": mesh.comm_calls,
        "cache_heads": stack.new_cache(1, 4).layers[0].key.shape[2],
    }
    return out


def run_configs(mesh, jobs: list[tuple[str, ModelSpec, str]]) -> dict[str, dict[str, object]]:
    """Several models in one launch (starting ranks is the slow part on a small host)."""
    return {name: run_sharded(mesh, spec, checkpoint) for name, spec, checkpoint in jobs}


def fail_mid_generation(mesh, spec: ModelSpec, checkpoint: str, how: str) -> None:
    """Rank 1 raises (or dies) after the prefill; rank 0 carries on into the next collective."""
    stack = ShardedTransformerStack(spec, mesh).eval()
    load_shard(stack, checkpoint, stack.plan.tensors(), hf_to_module)
    cache = stack.new_cache(16, 4)
    blocks = KVBlockManager(16, 4, spec.max_seq_len)
    meta = blocks.prepare([0], [3], ExecutionMode.PREFILL)
    with torch.no_grad():
        nxt = stack(torch.tensor([1, 2, 3]), meta, cache).argmax(-1)
        for step in range(20):
            if mesh.rank == 1 and step == 2:
                if how == "raise":
                    raise RuntimeError("rank 1 fails mid-generation")
                os._exit(7)
            meta = blocks.prepare([0], [1], ExecutionMode.DECODE)
            nxt = stack(nxt, meta, cache).argmax(-1)
