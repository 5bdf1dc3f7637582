"""fuse_projections after load_weights: fused weights are the checkpoint's tensors
concatenated, the FFN computes the same, and only fused parameters remain."""

from __future__ import annotations

import torch
from safetensors.torch import save_file

from tttv2.blocks import Attention, FeedForward
from tttv2.blocks.weights import SafetensorsCheckpoint, fuse_projections, load_weights
from tttv2.core.specs import AttentionSpec, FeedForwardSpec


class Layer(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = Attention(
            AttentionSpec(hidden_dim=8, num_heads=4, num_kv_heads=2, qkv_bias=True)
        )
        self.mlp = FeedForward(FeedForwardSpec(hidden_dim=8, intermediate_dim=12))
        self.plain = FeedForward(FeedForwardSpec(hidden_dim=8, intermediate_dim=12, gated=False))


def test_fused_weights_are_the_checkpoint_tensors_concatenated(tmp_path):
    g = torch.Generator().manual_seed(1)
    state = {k: torch.randn(v.shape, generator=g) for k, v in Layer().state_dict().items()}
    save_file(state, tmp_path / "model.safetensors")
    layer = Layer()
    with SafetensorsCheckpoint(tmp_path) as ckpt:
        load_weights(layer, ckpt)
    x = torch.randn(5, 8, generator=g)
    before = layer.mlp(x)
    assert fuse_projections(layer) == 2  # attention + gated FFN; the plain FFN is left alone
    qkv = [state[f"attn.{p}_proj.weight"] for p in "qkv"]
    assert torch.equal(layer.attn.qkv_proj.weight, torch.cat(qkv))
    assert torch.equal(
        layer.attn.qkv_proj.bias, torch.cat([state[f"attn.{p}_proj.bias"] for p in "qkv"])
    )
    gate_up = torch.cat([state["mlp.gate_proj.weight"], state["mlp.up_proj.weight"]])
    assert torch.equal(layer.mlp.gate_up_proj.weight, gate_up)
    torch.testing.assert_close(layer.mlp(x), before)
    names = {n for n, _ in layer.named_parameters()}
    assert not any(n.startswith(("attn.q_proj", "mlp.gate_proj", "mlp.up_proj")) for n in names)
    assert "plain.up_proj.weight" in names
    assert fuse_projections(layer) == 2  # idempotent: fusing again changes nothing
    assert torch.equal(layer.attn.qkv_proj.weight, torch.cat(qkv))


def test_fusion_can_be_limited():
    layer = Layer()
    fuse_projections(layer, qkv=False)
    assert layer.attn.q_proj is not None and layer.mlp.gate_up_proj is not None


def test_default_dtype_builds_parameters_in_that_dtype_and_restores():
    from tttv2.blocks.weights import default_dtype

    before = torch.get_default_dtype()
    with default_dtype(torch.bfloat16):
        layer = Layer()
    assert {p.dtype for p in layer.parameters()} == {torch.bfloat16}
    assert torch.get_default_dtype() == before
    with default_dtype(None):
        assert torch.get_default_dtype() == before
