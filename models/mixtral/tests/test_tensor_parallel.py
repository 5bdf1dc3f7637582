"""Two tensor-parallel ranks (gloo, local) load the 8-expert checkpoint with the library's
shard plan and this project's tensor names: each rank reads only its own four experts
(whole, from the per-expert tensors as stored) plus its slices of attention and vocabulary,
and the two together give the single-process logits."""

from __future__ import annotations

from tttv2_model_mixtral import load, rename_rules

from tttv2.testing.model_kit import prefill, prompt


def run_rank(mesh, folder, ids):  # module level: the launcher's workers import it
    from tttv2.blocks.parallel import ShardedTransformerStack, load_shard
    from tttv2.testing.model_kit import prefill as run_prefill

    spec = load(folder).spec
    stack = ShardedTransformerStack(spec, mesh).eval()
    report = load_shard(stack, folder, stack.plan.tensors(), rename_rules(spec))
    experts = sorted(
        {int(n.split(".")[4]) for n, _ in stack.named_parameters() if ".ffn.experts." in n}
    )
    logits, _ = run_prefill(stack, ids)
    return logits, experts, report.bytes_read, report.checkpoint_bytes


def test_two_ranks_hold_disjoint_experts_and_reproduce_the_logits(windowed):
    from tttv2.hw.mesh import launch

    ids = prompt(windowed.vocab_size, n=24)
    expected, _ = prefill(load(windowed.path).model, ids)
    results = launch(run_rank, 2, windowed.path, ids, timeout_s=300, threads_per_rank=1)
    assert [r[1] for r in results] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    for logits, _, bytes_read, checkpoint_bytes in results:
        assert (logits - expected).abs().max() < 1e-4
        assert bytes_read < 0.6 * checkpoint_bytes  # each rank reads about half
