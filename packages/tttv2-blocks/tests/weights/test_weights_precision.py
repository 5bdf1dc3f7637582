"""apply_precision_policy / apply_device_precision: each weight round-tripped through its
role's format, roles found from where the weight sits, norms and biases untouched, and
load_weights applying the device's preset (tt profiles) by itself."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from tttv2.blocks import LMHead, TokenEmbedding
from tttv2.blocks.weights import SafetensorsCheckpoint, apply_precision_policy, load_weights
from tttv2.blocks.weights.precision import apply_device_precision, weight_roles
from tttv2.core.specs import EmbeddingSpec, LMHeadSpec
from tttv2.hw import DeviceConfig
from tttv2.hw.precision import round_trip_weight


class Block(torch.nn.Module):
    """Blocks' attribute names (Attention / FeedForward) on plain linears, 64 wide so every
    tile and 16-value group is whole."""

    def __init__(self, tied: bool = False) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.embedding = TokenEmbedding(EmbeddingSpec(vocab_size=96, hidden_dim=64))
        for name, shape in (
            ("qkv_proj", (128, 64)),
            ("o_proj", (64, 64)),
            ("gate_up_proj", (256, 64)),
            ("down_proj", (64, 128)),
            ("router", (8, 64)),
        ):
            lin = torch.nn.Linear(shape[1], shape[0], bias=name == "o_proj")
            setattr(self, name, lin)
        self.norm = torch.nn.LayerNorm(64)
        self.lm_head = LMHead(
            LMHeadSpec(vocab_size=96, hidden_dim=64, tied=tied),
            embedding=self.embedding if tied else None,
        )
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)


def snapshot(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def test_roles_from_positions():
    roles = {k: v[0] for k, v in weight_roles(Block()).items()}
    assert roles == {
        "embedding.weight": "embedding",
        "qkv_proj.weight": "wqkv",
        "o_proj.weight": "wo",
        "gate_up_proj.weight": "w1_w3",
        "down_proj.weight": "w2",
        "router.weight": "other",
        "lm_head.weight": "lm_head",
    }


def test_performance_preset_round_trips_each_weight_in_its_format():
    m = Block()
    before = snapshot(m)
    counts = apply_precision_policy(m, "performance")
    assert counts == {"bfloat16": 2, "bfloat8_b": 4, "bfloat4_b": 1}
    after = m.state_dict()
    for name, fmt in (
        ("gate_up_proj.weight", "bfloat4_b"),
        ("down_proj.weight", "bfloat8_b"),
        ("qkv_proj.weight", "bfloat8_b"),
        ("lm_head.weight", "bfloat8_b"),
        ("embedding.weight", "bfloat16"),
        ("router.weight", "bfloat16"),
    ):
        expected = round_trip_weight(before[name], fmt, matmul=name != "embedding.weight")
        assert torch.equal(after[name], expected), name
        assert not torch.equal(after[name], before[name]), name  # the format changed it
    for name in ("norm.weight", "norm.bias", "o_proj.bias"):
        assert torch.equal(after[name], before[name]), name


def test_tied_head_rounded_once_in_the_embedding_format():
    m = Block(tied=True)
    before = snapshot(m)["embedding.weight"]
    counts = apply_precision_policy(m, "performance")
    assert counts["bfloat16"] == 2  # embedding (tied head) and router
    assert torch.equal(m.embedding.weight, before.to(torch.bfloat16).float())


def test_device_precision_follows_the_profile():
    cpu, tt = Block(), Block()
    before = snapshot(cpu)
    assert apply_device_precision(cpu, DeviceConfig.auto_detect("cpu:avx2")) == {}
    assert all(torch.equal(v, before[k]) for k, v in cpu.state_dict().items())
    assert apply_device_precision(tt, DeviceConfig.auto_detect("tt:N150"))["bfloat4_b"] == 1


@pytest.mark.parametrize("profile,changed", [("tt:N150", True), ("cpu:avx2", False)])
def test_load_weights_applies_the_detected_device_preset(tmp_path, monkeypatch, profile, changed):
    src = Block()
    save_file(
        {k: v.contiguous() for k, v in src.state_dict().items()}, tmp_path / "model.safetensors"
    )
    monkeypatch.setenv("TTTV2_DEVICE_PROFILE", profile)
    dst = Block()
    load_weights(dst, SafetensorsCheckpoint(tmp_path))
    gate = dst.gate_up_proj.weight
    assert torch.equal(gate, round_trip_weight(src.gate_up_proj.weight, "bfloat4_b")) is changed
    assert torch.equal(gate, src.gate_up_proj.weight) is not changed


def test_int8_preset_stores_int8_codes_and_scales():
    """int8 projections become Int8Linear (codes and scales of quantize_int8, bias kept),
    the head gets its own codes, the embedding and the norms keep their values."""
    from tttv2.blocks.building_blocks.linear import Int8Linear
    from tttv2.hw.precision import quantize_int8

    m = Block()
    before = snapshot(m)
    counts = apply_precision_policy(m, "int8")
    assert counts == {"int8": 6, "bfloat16": 1}  # qkv, o, gate_up, down, router, head; embedding
    for name in ("qkv_proj", "o_proj", "gate_up_proj", "down_proj", "router"):
        lin = getattr(m, name)
        assert type(lin) is Int8Linear, name
        q, scale = quantize_int8(before[f"{name}.weight"])
        assert torch.equal(lin.weight, q) and torch.equal(lin.scale, scale), name
        assert not lin.weight.requires_grad
    assert torch.equal(m.o_proj.bias, before["o_proj.bias"])
    q, scale = quantize_int8(before["lm_head.weight"])
    assert torch.equal(m.lm_head.int8_weight, q) and torch.equal(m.lm_head.int8_scale, scale)
    x = torch.randn(20, 64)
    with torch.no_grad():  # prefill rows: the round-tripped weight's product
        assert torch.allclose(
            m.lm_head(x), x @ round_trip_weight(before["lm_head.weight"], "int8").T, atol=1e-5
        )
    assert torch.equal(m.embedding.weight, before["embedding.weight"].to(torch.bfloat16).float())
    assert torch.equal(m.norm.weight, before["norm.weight"])


def test_int8_tied_head_gets_its_own_copy_and_the_embedding_stays_bf16():
    m = Block(tied=True)
    emb = snapshot(m)["embedding.weight"].to(torch.bfloat16).float()
    counts = apply_precision_policy(m, "int8")
    assert counts["int8"] == 6 and counts["bfloat16"] == 1
    assert m.lm_head.weight is m.embedding.weight and torch.equal(m.embedding.weight, emb)
    from tttv2.hw.precision import quantize_int8

    q, _ = quantize_int8(emb)
    assert torch.equal(m.lm_head.int8_weight, q)
