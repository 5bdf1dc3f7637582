"""Every model family installed in the workspace at tensor parallelism 2 against TP 1, on
the workspace's packages: each family's own plugin loads a rank's shard
(``load(..., mesh=mesh)``: its rename rules read through their placements, so fused
q/k/v and gate/up and GPT-2's transposed ``Conv1D`` tensors are read by range), and both
ranks' prefill and decode logits equal the TP-1 model's within fp32 tolerance, the greedy
tokens are identical and each rank holds about half the weights.

Cheap by design: ONE 2-process gloo group on 127.0.0.1 runs every family in turn (starting
ranks dominates on a small host), tiny checkpoints (tttv2.testing's defaults, fp32), one
24-token prompt and 8 greedy steps, a hard timeout on the whole group."""

from __future__ import annotations

import importlib.metadata
import time

import pytest
import torch
from families import PLUGIN_GROUP, TINY_BASE, TINY_EXTRA, project
from families_tensor_parallel import greedy_run, parameter_bytes, run_families

from tttv2.hw.mesh import launch
from tttv2.testing.model_kit import checkpoint_builder, prompt, shared_cache_dir

ARCHITECTURES = sorted({ep.name for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP)})
STEPS = 8
TIMEOUT_S = 400  # the whole group, every family; collectives are bounded by it too
ATOL = 1e-4


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """TP 1 in this process, then every family at TP 2 in one launch."""
    cache = shared_cache_dir(tmp_path_factory, "families")
    jobs, tp1 = [], {}
    for architecture in ARCHITECTURES:
        base = TINY_BASE | TINY_EXTRA.get(architecture, {})
        checkpoint = checkpoint_builder(cache, architecture, base)()
        ids = prompt(checkpoint.vocab_size, n=24)
        loaded = project(architecture).load(checkpoint.path, dtype=torch.float32)
        tp1[architecture] = greedy_run(loaded.model, ids, STEPS) | {
            "parameter_bytes": parameter_bytes(loaded.model)
        }
        jobs.append((architecture, str(checkpoint.path), ids))
    start = time.monotonic()
    ranks = launch(run_families, 2, jobs, STEPS, timeout_s=TIMEOUT_S)
    print(f"\nTP 2 group, {len(jobs)} families: {time.monotonic() - start:.1f} s wall")
    return tp1, ranks


def test_the_workspace_has_the_fused_and_transposed_families() -> None:
    assert {"LlamaForCausalLM", "GPT2LMHeadModel", "Phi3ForCausalLM"} <= set(ARCHITECTURES)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_family_at_tp2_equals_tp1(runs, architecture):
    tp1, ranks = runs
    want = tp1[architecture]
    assert len(set(want["tokens"])) > 2, "near-constant greedy tokens would compare nothing"
    for rank in ranks:
        got = rank[architecture]
        assert "error" not in got, got.get("error")
        assert got["model_class"] == "ShardedTransformerStack"
        for key in ("prefill", "decode"):
            torch.testing.assert_close(
                got[key], want[key], rtol=0, atol=ATOL, msg=f"rank {got['rank']} {key}"
            )
        assert got["tokens"] == want["tokens"]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_each_rank_holds_about_half_the_weights(runs, architecture):
    tp1, ranks = runs
    full = tp1[architecture]["parameter_bytes"]
    held = [rank[architecture].get("parameter_bytes", 0) for rank in ranks]
    print(f"\n{architecture}: TP 1 {full} B, TP 2 per rank {held} B")
    assert all(0.4 * full < h < 0.65 * full for h in held), (held, full)
