"""The engine at tensor parallelism 2 (two gloo ranks on 127.0.0.1 via tttv2.hw.mesh.launch):
rank 0 runs LLMEngine unchanged over a TensorParallelLeader, rank 1 follows its passes.
Greedy tokens of several prompts (chunked prefill, queued requests, mixed passes) equal the
engine's over the unsharded TransformerStack, for grouped-query attention (KV heads split)
and multi-query attention (the one KV head replicated on both ranks); the follower ran
every pass the leader ran. A follower killed mid-generation ends the whole group with one
error naming it, in bounded time. One launch for both models (starting ranks is the slow
part on a small host)."""

from __future__ import annotations

import time

import pytest
import torch
from tp_engine_helpers import (
    engine_on_ranks,
    generate_tokens,
    llama_spec,
    rank_dies_mid_generation,
    reference_stack,
    save_checkpoint,
)

pytest.importorskip("tttv2.blocks.parallel")
from tttv2.hw.mesh import WorkerFailedError, launch  # noqa: E402

CONFIGS = {"gqa": llama_spec(heads=4, kv_heads=2), "mqa": llama_spec(heads=4, kv_heads=1)}
TIMEOUT_S = 240


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    torch.set_num_threads(1)
    jobs, expected = [], {}
    for name, spec in CONFIGS.items():
        ref = reference_stack(spec)
        jobs.append((name, spec, save_checkpoint(ref, tmp_path_factory.mktemp(name))))
        expected[name] = generate_tokens(ref)
    ranks = launch(engine_on_ranks, 2, jobs, timeout_s=TIMEOUT_S, threads_per_rank=1)
    return expected, ranks


@pytest.mark.parametrize("name", list(CONFIGS))
def test_engine_tokens_at_tp2_equal_tp1(runs, name):
    expected, ranks = runs
    leader, follower = ranks[0][name], ranks[1][name]
    assert leader["tokens"] == expected[name]
    assert all(len(t) == 6 for t in expected[name])
    assert (
        leader["passes"] == follower["passes"] > len(expected[name][0])
    )  # the follower ran every pass
    assert leader["comm_seconds"] > 0


def test_kv_heads_per_rank(runs):
    _, ranks = runs
    assert [r["gqa"]["cache_kv_heads"] for r in ranks] == [1, 1]  # 2 KV heads split
    assert [r["mqa"]["cache_kv_heads"] for r in ranks] == [1, 1]  # 1 KV head replicated


def test_follower_killed_mid_generation_ends_the_group(tmp_path):
    spec = CONFIGS["gqa"]
    path = save_checkpoint(reference_stack(spec), tmp_path)
    start = time.monotonic()
    with pytest.raises(WorkerFailedError, match=r"rank 1 died \(exit code 9\)"):
        launch(
            rank_dies_mid_generation,
            2,
            spec,
            path,
            timeout_s=TIMEOUT_S,
            collective_timeout_s=60,
            threads_per_rank=1,
        )
    assert time.monotonic() - start < 120  # seen by the launcher, not by any timeout
