"""The engine with our windowed Qwen2 (window 7 on layer 1, shorter than a 16-token cache block and
than every prompt but the shortest): continuous batching and preemption give every request
transformers' greedy fp32 tokens for its prompt run alone."""

from __future__ import annotations

import torch
from tttv2_model_qwen2 import load

from tttv2.serve.runtime import LLMEngine, SamplingParams, StopConditions
from tttv2.testing.hf import reference_outputs
from tttv2.testing.model_kit import check_continuous_batching, prompt


def test_requests_joining_and_leaving_a_batch_match_transformers_alone(windowed):
    check_continuous_batching(load(windowed.path, dtype=torch.float32), windowed)


def test_preempted_requests_are_recomputed_to_transformers_tokens(windowed):
    """Four 20-token prompts generating 40 tokens need 16 blocks; 9 force preemption."""
    loaded = load(windowed.path, dtype=torch.float32)
    engine = LLMEngine(
        loaded.model, num_blocks=9, block_size=16, max_seq_len=loaded.max_context, max_num_seqs=4
    )
    prompts = [prompt(windowed.vocab_size, n=20, seed=s) for s in range(4)]
    outputs = engine.generate(prompts, SamplingParams(), StopConditions(max_new_tokens=40))
    assert engine.stats.preemptions > 0, "nothing was preempted: the test would check nothing"
    hf = windowed.load_model()
    for p, out in zip(prompts, outputs, strict=True):
        assert out.token_ids == reference_outputs(hf, p, greedy_steps=40).greedy_tokens.tolist()
