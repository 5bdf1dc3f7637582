"""TransformerStack.compile_decode: the decode step traced by torch.compile as one graph
(no graph break: no host reads of the block table, no per-pass Python state) computes what
the eager step computes; larger batches and other modes stay eager. Traced with dynamo's
``eager`` backend so the test costs tracing, not C++ compilation."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from tttv2.blocks import TransformerStack
from tttv2.core import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    ExecutionMode,
    FeedForwardSpec,
    LMHeadSpec,
    ModelSpec,
    NormSpec,
    RopeSpec,
)

HIDDEN, VOCAB = 32, 61


def _spec(tied: bool = True) -> ModelSpec:
    norm = NormSpec(dim=HIDDEN, eps=1e-5)
    rope = RopeSpec(head_dim=8, rotary_dim=8, theta=500.0)
    attention = AttentionSpec(
        hidden_dim=HIDDEN, num_heads=4, num_kv_heads=2, head_dim=8, max_seq_len=128, rope=rope
    )
    layer = DecoderLayerSpec(attention=attention, ffn=FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=48),
                             attn_norm=norm, ffn_norm=norm)  # fmt: skip
    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN),
        layers=(layer, layer),
        final_norm=norm,
        lm_head=LMHeadSpec(hidden_dim=HIDDEN, vocab_size=VOCAB, tied=tied),
        max_seq_len=128,
    )


def _stack(seed: int = 0) -> TransformerStack:
    torch.manual_seed(seed)
    stack = TransformerStack(_spec())
    with torch.no_grad():
        for p in stack.parameters():
            p.normal_(0.0, 0.3)
    for layer in stack.layers:
        layer.attention.fuse_qkv()
        layer.ffn.fuse_gate_up()
    return stack.eval()


def _generate(stack: TransformerStack, prompts: list[list[int]], steps: int) -> list[torch.Tensor]:
    """Prefill every prompt, then ``steps`` greedy decode passes of the whole batch; the
    logits of every pass. Blocks of 4 tokens, so the context crosses block boundaries."""
    cache = stack.new_cache(64, 4)
    blocks = cache.block_manager(128)
    out = []
    with torch.inference_mode():
        meta = blocks.prepare(
            list(range(len(prompts))), [len(p) for p in prompts], ExecutionMode.PREFILL
        )
        logits = stack(torch.tensor([t for p in prompts for t in p]), meta, cache)
        for _ in range(steps):
            out.append(logits)
            meta = blocks.prepare(
                list(range(len(prompts))), [1] * len(prompts), ExecutionMode.DECODE
            )
            logits = stack(logits.argmax(-1), meta, cache)
    return out


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def test_compiled_decode_equals_eager_in_one_graph() -> None:
    eager = _generate(_stack(), [[3, 14, 15, 9, 26]], 9)
    stack = _stack()
    stack.compile_decode(backend="eager")
    assert stack.decode_compiled
    compiled = _generate(stack, [[3, 14, 15, 9, 26]], 9)
    for a, b in zip(compiled, eager, strict=True):
        assert (a - b).abs().max() < 1e-5
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert counters["stats"]["unique_graphs"] >= 1


def test_batches_above_max_batch_and_prefill_run_eager() -> None:
    stack = _stack()
    stack.compile_decode(backend="eager", max_batch=1)
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9]]
    compiled = _generate(stack, prompts, 3)
    assert counters["stats"]["unique_graphs"] == 0  # batch 2 > max_batch: never traced
    eager = _generate(_stack(), prompts, 3)
    for a, b in zip(compiled, eager, strict=True):
        assert torch.equal(a, b)
    stack.compile_decode(False)
    assert not stack.decode_compiled
    with pytest.raises(ValueError, match="max_batch"):
        stack.compile_decode(max_batch=0)
