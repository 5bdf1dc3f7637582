"""Two gloo ranks on 127.0.0.1 (tttv2.hw.mesh.launch) against the unsharded model.

For each tiny Llama-shaped model — GQA (untied, vocabulary not divisible by 2), MQA with
the KV head replicated (tied head, embedding scale, final soft-cap), q/k/v, output and FFN
biases, MoE with experts split and a gated shared expert — every rank's logits of a ragged
prefill, of every greedy decode step and of a cached-context prefill, and the per-layer
hidden states, equal the unsharded TransformerStack's within fp32 tolerance, the greedy
tokens are identical, each rank holds about half the weights (and read only that much),
and its paged KV cache holds only its KV heads. One launch runs all models (starting ranks
dominates the time on a small host); each test then checks one model."""

from __future__ import annotations

import time

import pytest
import torch
from tp_helpers import (
    fail_mid_generation,
    generate,
    llama_spec,
    reference_stack,
    run_configs,
    save_checkpoint,
)

from tttv2.hw.mesh import WorkerFailedError, launch

CONFIGS = {
    "gqa": llama_spec(heads=4, kv_heads=2, vocab=101),
    "mqa_tied": llama_spec(heads=4, kv_heads=1, tied=True, softcap=30.0, embed_scale=8.0),
    "biases": llama_spec(heads=4, kv_heads=2, qkv_bias=True, out_bias=True, ffn_bias=True),
    "moe": llama_spec(heads=4, kv_heads=2, moe=True),
}
TIMEOUT_S = 240


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    jobs, refs = [], {}
    for name, spec in CONFIGS.items():
        ref = reference_stack(spec)
        path = save_checkpoint(ref, tmp_path_factory.mktemp(name))
        jobs.append((name, spec, str(path)))
        refs[name] = (ref, generate(ref))
    ranks = launch(run_configs, 2, jobs, timeout_s=TIMEOUT_S)
    return refs, ranks


@pytest.mark.parametrize("name", list(CONFIGS))
def test_two_ranks_equal_the_unsharded_model(runs, name):
    refs, ranks = runs
    _, want = refs[name]
    for rank in ranks:
        got = rank[name]
        for key in ("prefill", "hidden", "decode", "continuation"):
            torch.testing.assert_close(
                got[key], want[key], rtol=0, atol=1e-4, msg=f"rank {got['rank']} {key}"
            )
        assert got["tokens"] == want["tokens"]
    # the ranks agree bit for bit: they computed the same collectives
    assert torch.equal(ranks[0][name]["decode"], ranks[1][name]["decode"])


@pytest.mark.parametrize("name", list(CONFIGS))
def test_each_rank_holds_and_reads_about_half_the_weights(runs, name):
    refs, ranks = runs
    ref, _ = refs[name]
    full = sum(p.numel() * p.element_size() for p in ref.parameters())
    for rank in ranks:
        got = rank[name]
        assert 0.45 * full < got["parameter_bytes"] < 0.6 * full, (got["parameter_bytes"], full)
        assert got["bytes_read"] == got["parameter_bytes"]
        assert got["checkpoint_bytes"] == full
    assert ranks[0][name]["comm_calls"] > 0


def test_each_rank_caches_only_its_kv_heads(runs):
    _, ranks = runs
    assert [r["gqa"]["cache_heads"] for r in ranks] == [1, 1]  # 2 KV heads split
    assert [r["mqa_tied"]["cache_heads"] for r in ranks] == [1, 1]  # 1 KV head replicated


@pytest.mark.parametrize(
    "how, message", [("raise", "rank 1 raised RuntimeError: rank 1 fails"), ("die", "rank 1 died")]
)
def test_a_rank_failing_mid_generation_ends_the_group(tmp_path, how, message):
    spec = CONFIGS["gqa"]
    path = save_checkpoint(reference_stack(spec), tmp_path)
    start = time.monotonic()
    with pytest.raises(WorkerFailedError, match=message):
        launch(
            fail_mid_generation,
            2,
            spec,
            str(path),
            how,
            timeout_s=TIMEOUT_S,
            collective_timeout_s=60,
        )
    assert time.monotonic() - start < 90  # seen by the launcher, not by the run's timeout
