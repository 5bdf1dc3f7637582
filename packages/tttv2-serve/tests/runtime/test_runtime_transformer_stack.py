"""The runtime driving the real ``tttv2.blocks.TransformerStack`` (2 layers, GQA, RoPE):
batch invariance and speculative decoding, against greedy decoding by full recomputation
(a fresh cache and one PREFILL pass per token, no runtime involved)."""

import pytest
import torch
from runtime_helpers import random_limits, random_prompts, run_staggered
from stack_model import tiny_model_spec, tiny_stack, truncated_stack

from tttv2.core import ExecutionMode, KVBlockManager
from tttv2.serve.runtime import (
    LLMEngine,
    Request,
    SamplingParams,
    SpeculativeDecoder,
    StopConditions,
)

pytest.importorskip("tttv2.blocks", reason="tttv2-blocks (TransformerStack) is not installed")

SPEC = tiny_model_spec(num_layers=2, hidden=32, vocab_size=64, max_seq_len=128)


@torch.no_grad()
def recompute_greedy(stack, prompt, n):
    """Greedy tokens, each from a fresh prefill of the whole sequence."""
    tokens, out = list(prompt), []
    for _ in range(n):
        blocks = KVBlockManager(16, 8, SPEC.max_seq_len)
        meta = blocks.prepare([0], [len(tokens)], ExecutionMode.PREFILL)
        logits = stack(torch.tensor(tokens), meta, stack.new_cache(16, 8))
        out.append(int(logits[-1].argmax()))
        tokens.append(out[-1])
    return out


@pytest.mark.parametrize("strategy", ["prefill_decode", "continuous_batching"])
def test_stack_batch_invariance(strategy):
    stack = tiny_stack(SPEC, strategy, seed=1)
    prompts = random_prompts(17, 64, 2, 30, seed=2)
    limits = random_limits(17, 3, 16, seed=2)
    requests = [
        Request(p, SamplingParams(), s, f"r{i}")
        for i, (p, s) in enumerate(zip(prompts, limits, strict=True))
    ]
    engine = LLMEngine(stack, num_blocks=128, block_size=8, max_num_batched_tokens=24)
    batched = run_staggered(engine, requests, join_every=1, first=6)
    for r in requests:
        expected = recompute_greedy(stack, r.prompt_ids, r.stop.max_new_tokens)
        assert batched[r.request_id] == expected, r.request_id
    assert engine.num_free_blocks == 128


def test_stack_seeded_sampling_batch_invariance():
    stack = tiny_stack(SPEC, "continuous_batching", seed=3)
    prompts = random_prompts(12, 64, 2, 30, seed=4)
    requests = [
        Request(
            p,
            SamplingParams(temperature=0.9, top_p=0.95, seed=i),
            StopConditions(max_new_tokens=10),
            f"r{i}",
        )
        for i, p in enumerate(prompts)
    ]
    engine = LLMEngine(stack, num_blocks=128, block_size=8, max_num_batched_tokens=24)
    batched = run_staggered(engine, requests, join_every=1, first=4)
    for r in requests[::3]:
        alone = LLMEngine(stack, num_blocks=32, block_size=8).generate([r])[0]
        assert batched[r.request_id] == alone.token_ids


def test_stack_speculative_equals_greedy():
    target = tiny_stack(SPEC, "multi_mode", seed=5)
    draft = truncated_stack(target, 1)
    prompts = random_prompts(5, 64, 3, 20, seed=6)
    spec = SpeculativeDecoder(target, draft, 3, num_blocks=64, block_size=8)
    outs = spec.generate(prompts, SamplingParams(), StopConditions(max_new_tokens=12))
    for p, o in zip(prompts, outs, strict=True):
        assert o.token_ids == recompute_greedy(target, p, 12)
    assert spec.spec_stats.proposed > 0
    assert spec.target.blocks.num_free_blocks == 64 and spec.draft.blocks.num_free_blocks == 64
