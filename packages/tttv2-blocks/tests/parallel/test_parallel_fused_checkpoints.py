"""Two gloo ranks on 127.0.0.1 loading checkpoints whose tensors are fused or transposed
(tttv2.hw.mesh.launch): Phi-3's ``qkv_proj`` (q, k, v of unequal sizes under GQA; the KV
head replicated under MQA) and ``gate_up_proj``, GPT-2's ``Conv1D`` weights stored
``[in, out]`` with q/k/v fused in ``c_attn`` (plus learned positions, LayerNorm biases and a
tied head). Tiny checkpoints are written by transformers' ``save_pretrained``; each rank
reads only its rows of each part through the rules' placements
(:func:`~tttv2.blocks.weights.sharded_loading.shard_placements`). Every rank's logits (ragged
prefill, each greedy decode step, a cached-context prefill) and per-layer hidden states
equal the 1-rank model's (the whole checkpoint through the same rules) within fp32
tolerance, the greedy tokens are identical, and each rank reads about half the bytes."""

from __future__ import annotations

import time

import pytest
import torch
from tp_fused_helpers import (
    MODELS,
    gpt2_checkpoint,
    phi3_checkpoint,
    run_fused,
    unsharded,
)
from tp_helpers import PROMPTS, generate

from tttv2.hw.mesh import launch

TIMEOUT_S = 240
CHECKPOINTS = {
    "phi3_gqa": lambda folder: phi3_checkpoint(folder, kv_heads=2),
    "phi3_mqa": lambda folder: phi3_checkpoint(folder, kv_heads=1),
    "gpt2": gpt2_checkpoint,
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    jobs, refs = [], {}
    for name in MODELS:
        folder = CHECKPOINTS[name](tmp_path_factory.mktemp(name))
        jobs.append((name, str(folder)))
        ref = unsharded(name, str(folder))
        refs[name] = (ref, generate(ref), folder)
    start = time.monotonic()
    ranks = launch(run_fused, 2, jobs, timeout_s=TIMEOUT_S)
    print(f"\n2-rank launch, {len(jobs)} models: {time.monotonic() - start:.1f} s")
    return refs, ranks


@pytest.mark.parametrize("name", list(MODELS))
def test_the_one_rank_model_is_transformers(runs, name):
    """The reference is right (so equal logits below mean a right shard): the 1-rank
    model's prefill logits of the first prompt are transformers' within 1e-4."""
    from transformers import AutoModelForCausalLM

    refs, _ = runs
    _, want, folder = refs[name]
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        expected = hf(torch.tensor([PROMPTS[0]])).logits[0]
    torch.testing.assert_close(want["prefill"][: len(PROMPTS[0])], expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", list(MODELS))
def test_two_ranks_equal_one_rank(runs, name):
    refs, ranks = runs
    _, want, _ = refs[name]
    assert len(set(t for seq in want["tokens"] for t in seq)) > 2  # not a constant output
    for rank in ranks:
        got = rank[name]
        for key in ("prefill", "hidden", "decode", "continuation"):
            torch.testing.assert_close(
                got[key], want[key], rtol=0, atol=1e-4, msg=f"rank {got['rank']} {key}"
            )
        assert got["tokens"] == want["tokens"]


@pytest.mark.parametrize("name", list(MODELS))
def test_each_rank_reads_about_half_the_bytes(runs, name):
    refs, ranks = runs
    ref, _, _ = refs[name]
    full = sum(p.numel() * p.element_size() for p in ref.parameters())
    for rank in ranks:
        got = rank[name]
        assert got["checkpoint_bytes"] == full
        assert got["bytes_read"] == got["parameter_bytes"]
        assert 0.45 * full < got["bytes_read"] < 0.6 * full, (got["bytes_read"], full)
    print(f"\n{name}: checkpoint {full} B, per rank {[r[name]['bytes_read'] for r in ranks]} B")
