"""The mesh of one: a ShardedTransformerStack on DeviceMesh.single() loaded with
load_shard equals the TransformerStack it was saved from, every pass (no process group)."""

from __future__ import annotations

import pytest
import torch
from tp_helpers import generate, hf_to_module, llama_spec, reference_stack, save_checkpoint

from tttv2.blocks.parallel import ShardedTransformerStack, ShardLoadError, load_shard
from tttv2.hw.mesh import DeviceMesh


@pytest.mark.parametrize("tied", [False, True])
def test_mesh_of_one_equals_the_unsharded_stack(tmp_path, tied):
    spec = llama_spec(tied=tied, qkv_bias=True, out_bias=True, ffn_bias=True)
    ref = reference_stack(spec)
    path = save_checkpoint(ref, tmp_path)
    mesh = DeviceMesh.single()
    stack = ShardedTransformerStack(spec, mesh).eval()
    report = load_shard(stack, path, stack.plan.tensors(), hf_to_module)
    assert report.bytes_read == report.checkpoint_bytes == stack.parameter_bytes()
    want, got = generate(ref), generate(stack)
    for key in ("prefill", "hidden", "decode", "continuation"):
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=1e-5, msg=key)
    assert got["tokens"] == want["tokens"]
    assert mesh.comm_calls == 0 and mesh.group is None


def test_load_shard_names_missing_and_unexpected_tensors(tmp_path):
    spec = llama_spec()
    path = save_checkpoint(reference_stack(spec), tmp_path)
    stack = ShardedTransformerStack(spec, DeviceMesh.single())
    skip_norm = lambda name: None if name == "model.norm.weight" else hf_to_module(name)  # noqa: E731
    with pytest.raises(ShardLoadError, match="lacks final_norm.weight"):
        load_shard(stack, path, stack.plan.tensors(), skip_norm)
    with pytest.raises(ShardLoadError, match="unexpected tensor 'model.norm.weight'"):
        load_shard(
            stack,
            path,
            stack.plan.tensors(),
            lambda n: "no.such" if n == "model.norm.weight" else hf_to_module(n),
        )


def test_load_shard_refuses_a_checkpoint_of_another_shape(tmp_path):
    path = save_checkpoint(reference_stack(llama_spec(inter=96)), tmp_path)
    stack = ShardedTransformerStack(llama_spec(inter=128), DeviceMesh.single())
    with pytest.raises(
        ValueError, match=r"layers\.0\.ffn\.\w+_proj\.weight has shape \((96, 64|64, 96)\)"
    ):
        load_shard(stack, path, stack.plan.tensors(), hf_to_module)


def test_load_shard_reads_only_the_rank_slice_through_get_slice(tmp_path, monkeypatch):
    """Every tensor is read through safetensors' get_slice with the plan's index (never
    get_tensor, which reads it whole): rank 1 of 2 asks for its rows of k_proj only."""
    from tttv2.blocks.parallel import loading

    spec = llama_spec()
    path = save_checkpoint(reference_stack(spec), tmp_path)
    asked: dict[str, tuple] = {}
    real_open = loading.safe_open

    class Spy:
        def __init__(self, *args, **kwargs):
            self.inner = real_open(*args, **kwargs)

        def __enter__(self):
            self.file = self.inner.__enter__()
            return self

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

        def keys(self):
            return self.file.keys()

        def get_tensor(self, name):
            raise AssertionError(f"{name} read whole")

        def get_slice(self, name):
            piece = self.file.get_slice(name)

            class Recorder:
                get_shape, get_dtype = piece.get_shape, piece.get_dtype

                def __getitem__(self, index):
                    asked[name] = index
                    return piece[index]

            return Recorder()

    monkeypatch.setattr(loading, "safe_open", Spy)
    # rank 1 of 2, built and loaded without a process group (loading runs no collective)
    mesh = DeviceMesh(2, 1, 1, "cpu", group=object())
    stack = ShardedTransformerStack(spec, mesh)
    report = load_shard(stack, path, stack.plan.tensors(), hf_to_module)
    d, inter, everything = (
        spec.layers[0].attention.head_dim,
        spec.layers[0].ffn.intermediate_dim,
        slice(None),
    )
    assert asked["model.layers.0.self_attn.q_proj.weight"] == (
        slice(2 * d, 4 * d),
        everything,
    )  # heads 2, 3
    assert asked["model.layers.1.self_attn.k_proj.weight"] == (
        slice(d, 2 * d),
        everything,
    )  # KV head 1
    assert asked["model.layers.0.self_attn.o_proj.weight"] == (everything, slice(2 * d, 4 * d))
    assert asked["model.layers.0.mlp.down_proj.weight"] == (everything, slice(inter // 2, inter))
    assert asked["lm_head.weight"] == (slice(51, 101), everything)  # 101 rows: 51 + 50
    assert asked["model.norm.weight"] == (everything,)
    assert report.bytes_read == stack.parameter_bytes() < 0.6 * report.checkpoint_bytes
