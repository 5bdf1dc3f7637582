"""Shared by the tensor-parallel engine tests: tiny Llama-shaped specs (GQA, MQA), a
seeded unsharded reference, its checkpoint (module names), the engine run, and the worker
functions the ranks run (module level, so the launched workers can import them)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import save_file

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
from tttv2.serve.runtime import (
    LLMEngine,
    SamplingParams,
    StopConditions,
    TensorParallelLeader,
    follow_leader,
)

HIDDEN, HEAD_DIM, MAX_LEN = 64, 16, 64
PROMPTS = [[5, 17, 3, 90, 42, 8, 11, 64, 2], [61, 2, 77], [9, 9, 1, 4, 30]]
NEW_TOKENS = 6
# small budgets: chunked prefill, requests waiting for a seat, mixed prefill/decode passes
ENGINE = {"num_blocks": 24, "block_size": 4, "max_num_batched_tokens": 6, "max_num_seqs": 2}


def llama_spec(heads: int, kv_heads: int, vocab: int = 97, layers: int = 2) -> ModelSpec:
    rope = RopeSpec(head_dim=HEAD_DIM, theta=10000.0, max_position=MAX_LEN)
    norm = NormSpec(dim=HIDDEN, eps=1e-5)
    attention = AttentionSpec(
        hidden_dim=HIDDEN, num_heads=heads, num_kv_heads=kv_heads, head_dim=HEAD_DIM, rope=rope,
        max_seq_len=MAX_LEN,
    )  # fmt: skip
    layer = DecoderLayerSpec(
        attention=attention,
        ffn=FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=128),
        attn_norm=norm,
        ffn_norm=norm,
    )
    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=vocab, hidden_dim=HIDDEN),
        layers=(layer,) * layers,
        final_norm=norm,
        lm_head=LMHeadSpec(hidden_dim=HIDDEN, vocab_size=vocab),
        max_seq_len=MAX_LEN,
    )


def reference_stack(spec: ModelSpec, seed: int = 0):
    """The unsharded TransformerStack, seeded random weights (norms not all ones)."""
    from tttv2.blocks import TransformerStack

    torch.manual_seed(seed)
    stack = TransformerStack(spec)
    with torch.no_grad():
        for name, p in stack.named_parameters():
            if "norm" in name:
                p.normal_(1.0, 0.2)
    return stack.eval()


def save_checkpoint(stack: torch.nn.Module, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.safetensors"
    save_file({n: p.detach().contiguous() for n, p in stack.named_parameters()}, str(path))
    return str(path)


def generate_tokens(model) -> list[list[int]]:
    """Greedy tokens of PROMPTS through one LLMEngine over ``model``."""
    engine = LLMEngine(model, **ENGINE)
    outputs = engine.generate(PROMPTS, SamplingParams(), StopConditions(max_new_tokens=NEW_TOKENS))
    return [list(o.token_ids) for o in outputs]


def sharded(mesh, spec: ModelSpec, checkpoint: str):
    from tttv2.blocks.parallel import ShardedTransformerStack, load_shard

    stack = ShardedTransformerStack(spec, mesh).eval()
    load_shard(stack, checkpoint, stack.plan.tensors())  # saved with the module's names
    return stack


# -- worker functions ------------------------------------------------------------------------
def engine_on_ranks(mesh, jobs: list[tuple[str, ModelSpec, str]]) -> dict[str, object]:
    """Rank 0: the engine over a TensorParallelLeader; other ranks: follow_leader."""
    out: dict[str, object] = {}
    for name, spec, checkpoint in jobs:
        stack = sharded(mesh, spec, checkpoint)
        if mesh.rank == 0:
            leader = TensorParallelLeader(stack, mesh)
            tokens = generate_tokens(leader)
            leader.stop()
            out[name] = {
                "tokens": tokens,
                "passes": sum(s.passes for s in leader.comm.values()),
                "comm_seconds": sum(s.seconds for s in leader.comm.values()),
            }
        else:
            out[name] = {"passes": follow_leader(stack, mesh)}
        out[name]["cache_kv_heads"] = stack.new_cache(1, 4).layers[0].key.shape[2]
    return out


class DiesOnPass:
    """A follower's model that kills its process (no exception, no cleanup) on pass ``n``."""

    def __init__(self, model, n: int) -> None:
        self.model, self.n, self.calls = model, n, 0

    def parameters(self):
        return self.model.parameters()

    def new_cache(self, *args, **kwargs):
        return self.model.new_cache(*args, **kwargs)

    def forward(self, *args):
        self.calls += 1
        if self.calls == self.n:
            os._exit(9)
        return self.model(*args)


def rank_dies_mid_generation(mesh, spec: ModelSpec, checkpoint: str) -> None:
    stack = sharded(mesh, spec, checkpoint)
    if mesh.rank == 0:
        leader = TensorParallelLeader(stack, mesh)
        engine = LLMEngine(leader, num_blocks=24, block_size=4)
        engine.generate([[1, 2, 3]], SamplingParams(), StopConditions(max_new_tokens=40))
        leader.stop()
    else:
        follow_leader(DiesOnPass(stack, 4), mesh)
