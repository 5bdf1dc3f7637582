"""The timing pieces ``tttv2 bench`` and the benchmarks (tools/bench/bench_model.py) share:
the greedy timing loop, the engine of a bench run, and ratios of repeated measurements."""

from __future__ import annotations

import math

import pytest
import torch

from tttv2.cli.ratios import median_present, per_repeat_ratios, ratio
from tttv2.cli.throughput import bench_engine, run_hf, time_greedy_loop

CPU = torch.device("cpu")


def one_hot(tokens: list[int], vocab: int = 10) -> torch.Tensor:
    logits = torch.zeros(len(tokens), vocab)
    logits[torch.arange(len(tokens)), torch.tensor(tokens)] = 1.0
    return logits


def test_greedy_loop_feeds_each_step_the_previous_picks() -> None:
    fed: list[list[int]] = []

    def step(tokens: torch.Tensor) -> torch.Tensor:
        assert tokens.shape == (2, 1)
        fed.append(tokens.view(-1).tolist())
        return one_hot([(t + 1) % 10 for t in fed[-1]])

    prefill_s, decode_s = time_greedy_loop(lambda: one_hot([3, 7]), step, 4, CPU)
    assert fed == [[3, 7], [4, 8], [5, 9]]  # gen_len - 1 steps, each fed the last argmax
    assert prefill_s >= 0.0 and decode_s >= 0.0


def test_greedy_loop_of_one_token_only_prefills() -> None:
    def step(tokens: torch.Tensor) -> torch.Tensor:
        raise AssertionError("no decode step for gen_len 1")

    prefill_s, decode_s = time_greedy_loop(lambda: one_hot([1]), step, 1, CPU)
    assert math.isfinite(prefill_s) and decode_s >= 0.0


def test_run_hf_decodes_what_transformers_generate_decodes() -> None:
    """run_hf threads transformers' KV cache through the loop: the tokens it feeds are
    ``generate``'s greedy continuation (a lost cache would feed different ones)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        initializer_range=0.5,
    )  # fmt: skip
    model = transformers.LlamaForCausalLM(cfg).eval()
    prompts = torch.randint(0, 97, (2, 5), generator=torch.Generator().manual_seed(1))
    fed: list[torch.Tensor] = []
    model.register_forward_pre_hook(
        lambda _m, _a, kw: fed.append(kw["input_ids"].clone()), with_kwargs=True
    )
    run_hf(model, prompts, 6, CPU, logits_to_keep=1)
    assert len(fed) == 6 and torch.equal(fed[0], prompts)
    fed_tokens = torch.cat(fed[1:], dim=1)
    fed.clear()
    expected = model.generate(prompts, max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(fed_tokens, expected[:, 5:10])


def test_bench_engine_holds_exactly_the_run_and_generates_it(tiny_llama) -> None:
    from tttv2.cli.kv_pool import loaded_kv_pool
    from tttv2.cli.loading import load
    from tttv2.serve.runtime import SamplingParams, StopConditions
    from tttv2.testing.hf import reference_outputs

    loaded = load(tiny_llama.path, "float32", CPU)
    engine = bench_engine(loaded, 2, 7, 5, CPU)
    pool = loaded_kv_pool(loaded, CPU, seq_len=12, num_seqs=2)
    assert engine.runner.blocks.block_size == pool.block_size
    assert engine.runner.blocks.num_blocks == 2 * math.ceil(12 / pool.block_size)
    prompt = list(range(3, 10))
    outputs = engine.generate([prompt, prompt], SamplingParams(), StopConditions(max_new_tokens=5))
    ref = reference_outputs(tiny_llama, prompt, greedy_steps=5)
    assert [o.token_ids for o in outputs] == [ref.greedy_tokens.tolist()] * 2


def test_ratios_skip_what_is_missing() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(None, 2.0) is None and ratio(3.0, None) is None and ratio(3.0, 0.0) is None
    assert per_repeat_ratios([2.0, None, 9.0], [1.0, 4.0, 3.0]) == [2.0, None, 3.0]
    assert median_present([2.0, None, 3.0, 10.0]) == 3.0
    assert median_present([None, None]) is None
    with pytest.raises(ValueError):
        per_repeat_ratios([1.0], [1.0, 2.0])  # repeats must pair up
