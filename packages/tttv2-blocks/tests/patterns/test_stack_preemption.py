"""A TransformerStack served by tttv2.core's LLMEngine on a KV pool too small for its
requests: the scheduler preempts (frees a running request's blocks, recomputes it later)
and every request still gets exactly the greedy tokens it gets in an engine of its own,
with the stack's paged cache and its attention modes doing the work, for both runtime
strategies (PREFILL + DECODE passes; CONTINUOUS_BATCH passes mixing the two)."""

from __future__ import annotations

import math

import pytest
import torch

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
from tttv2.serve.runtime import LLMEngine, SamplingParams, StopConditions

HIDDEN, VOCAB, MAX_SEQ = 32, 64, 128
NEW_TOKENS = 12
BLOCK, SMALL_POOL = 4, 10  # 40 token slots for 6 requests of 8-14 + 12 tokens


def _stack(strategy: str) -> TransformerStack:
    norm = NormSpec(dim=HIDDEN, eps=1e-5)
    attention = AttentionSpec(
        hidden_dim=HIDDEN,
        num_heads=4,
        num_kv_heads=2,
        max_seq_len=MAX_SEQ,
        rope=RopeSpec(head_dim=HIDDEN // 4, max_position=MAX_SEQ),
    )
    layer = DecoderLayerSpec(
        attention=attention,
        ffn=FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=2 * HIDDEN),
        attn_norm=norm,
        ffn_norm=norm,
    )
    spec = ModelSpec(
        embedding=EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN),
        layers=(layer, layer),
        final_norm=norm,
        lm_head=LMHeadSpec(hidden_dim=HIDDEN, vocab_size=VOCAB),
        max_seq_len=MAX_SEQ,
    )
    stack = TransformerStack(spec, execution_strategy=strategy)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():  # unit-ish norms, N(0, 1/fan_in) projections, a head giving peaked logits
        for name, p in stack.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "norm" in name:
                p.copy_(1.0 + 0.1 * noise)
            elif name.startswith("embedding"):
                p.copy_(noise)
            else:
                p.copy_(
                    (3.0 if name.startswith("lm_head") else 1.0) * noise / math.sqrt(p.shape[-1])
                )
    return stack


def _prompts(n: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lens = torch.randint(8, 15, (n,), generator=g).tolist()
    return [torch.randint(0, VOCAB, (m,), generator=g).tolist() for m in lens]


@pytest.mark.parametrize("strategy", ["prefill_decode", "continuous_batching"])
def test_preempted_requests_get_the_tokens_they_get_alone(strategy: str) -> None:
    stack = _stack(strategy)
    modes: set[ExecutionMode] = set()
    hook = stack.register_forward_pre_hook(lambda _m, args: modes.add(args[1].mode))
    prompts = _prompts(6, seed=3)
    stop = StopConditions(max_new_tokens=NEW_TOKENS)

    engine = LLMEngine(stack, num_blocks=SMALL_POOL, block_size=BLOCK, max_num_batched_tokens=24)
    with torch.inference_mode():
        outs = engine.generate(prompts, SamplingParams(), stop)
        hook.remove()
        alone = [
            LLMEngine(stack, num_blocks=64, block_size=BLOCK).generate([p], SamplingParams(), stop)[
                0
            ]
            for p in prompts
        ]

    assert engine.stats.preemptions > 0, "the pool never ran out: nothing was preempted"
    assert sum(o.num_preemptions for o in outs) == engine.stats.preemptions
    assert all(a.num_preemptions == 0 for a in alone)
    for i, (o, a) in enumerate(zip(outs, alone, strict=True)):
        assert len(o.token_ids) == NEW_TOKENS
        assert o.token_ids == a.token_ids, f"request {i}: {o.token_ids} != alone {a.token_ids}"
    assert engine.num_free_blocks == SMALL_POOL
    # steps mixing prompts and decodes ran as one CONTINUOUS_BATCH pass only where the
    # strategy has that mode; otherwise as a PREFILL and a DECODE pass
    assert ExecutionMode.DECODE in modes, modes
    assert (ExecutionMode.CONTINUOUS_BATCH in modes) == (strategy == "continuous_batching"), modes
