"""Speed of our Llama next to transformers on the same checkpoint, measured in the same
process (interleaved runs): prints the ratios, asserts only that both produced the same
greedy tokens. Run with ``-s`` to see the numbers."""

from __future__ import annotations

import torch
from tttv2_llama3 import load

from tttv2.serve.runtime import SamplingParams, StopConditions
from tttv2.testing.harness.speed import compare_speed
from tttv2.testing.model_kit import engine_for, prompt

BENCH_CONFIG = {
    "hidden_size": 256,
    "intermediate_size": 688,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "vocab_size": 512,
}
PROMPT_LEN, GEN_LEN = 64, 16


def test_decode_and_prefill_speed_against_transformers(build):
    ck = build(BENCH_CONFIG)
    ours = load(ck.path)
    hf = ck.load_model()
    ids = prompt(ck.vocab_size, n=PROMPT_LEN)
    ours_tokens: list[int] = []
    hf_tokens: list[int] = []

    def run_ours() -> None:
        engine = engine_for(ours, PROMPT_LEN + GEN_LEN)
        out = engine.generate([ids], SamplingParams(), StopConditions(max_new_tokens=GEN_LEN))[0]
        ours_tokens[:] = out.token_ids

    @torch.inference_mode()
    def run_hf() -> None:
        out = hf(torch.tensor([ids]), use_cache=True)
        tokens = [int(out.logits[0, -1].argmax())]
        for _ in range(GEN_LEN - 1):
            out = hf(
                torch.tensor([[tokens[-1]]]), past_key_values=out.past_key_values, use_cache=True
            )
            tokens.append(int(out.logits[0, -1].argmax()))
        hf_tokens[:] = tokens

    report = compare_speed(
        run_ours, run_hf, repeats=3, warmup=1, name="tttv2 llama", baseline_name="transformers"
    )
    print(
        f"\n[llama3 benchmark] prompt {PROMPT_LEN} + {GEN_LEN} greedy tokens, fp32, cpu: {report}"
    )
    assert ours_tokens == hf_tokens
    assert report.median_s > 0 and report.baseline_median_s > 0
