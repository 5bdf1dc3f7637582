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
        load_shard(stack, path, stack.plan.tensors(), lambda n: "no.such" if n == "model.norm.weight" else hf_to_module(n))


def test_load_shard_refuses_a_checkpoint_of_another_shape(tmp_path):
    path = save_checkpoint(reference_stack(llama_spec(inter=96)), tmp_path)
    stack = ShardedTransformerStack(llama_spec(inter=128), DeviceMesh.single())
    with pytest.raises(ValueError, match=r"layers\.0\.ffn\.\w+_proj\.weight has shape \((96, 64|64, 96)\)"):
        load_shard(stack, path, stack.plan.tensors(), hf_to_module)
