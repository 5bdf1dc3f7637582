"""FeedForward: gated (SwiGLU, GeGLU) and plain MLPs equal Hugging Face's LlamaMLP,
GemmaMLP and GPT2MLP with the same weights, equal the float64 reference for random specs,
and fuse_gate_up() keeps the math while storing the weights once."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import GemmaConfig, GPT2Config, LlamaConfig
from transformers.models.gemma.modeling_gemma import GemmaMLP
from transformers.models.gpt2.modeling_gpt2 import GPT2MLP
from transformers.models.llama.modeling_llama import LlamaMLP

from tttv2.blocks import FeedForward
from tttv2.core import FeedForwardSpec, ModuleConfig, create_module
from tttv2.core.specs import ACTIVATIONS
from tttv2.testing.reference.feed_forward import reference_feed_forward


def _copy_gated(ours: FeedForward, hf: torch.nn.Module) -> None:
    for name in ("gate_proj", "up_proj", "down_proj"):
        getattr(hf, name).weight = getattr(ours, name).weight
        if getattr(ours, name).bias is not None:
            getattr(hf, name).bias = getattr(ours, name).bias


def test_swiglu_equals_llama_mlp() -> None:
    spec = FeedForwardSpec(hidden_dim=32, intermediate_dim=88, activation="silu")
    ours = FeedForward(spec)
    hf = LlamaMLP(
        LlamaConfig(hidden_size=32, intermediate_size=88, num_attention_heads=4, hidden_act="silu")
    )
    _copy_gated(ours, hf)
    x = torch.randn(5, 32)
    assert torch.equal(ours(x), hf(x))


def test_swiglu_with_bias_equals_llama_mlp_with_bias() -> None:
    spec = FeedForwardSpec(hidden_dim=16, intermediate_dim=40, bias=True)
    ours = FeedForward(spec)
    hf = LlamaMLP(
        LlamaConfig(hidden_size=16, intermediate_size=40, num_attention_heads=4, mlp_bias=True)
    )
    _copy_gated(ours, hf)
    x = torch.randn(3, 16)
    assert torch.equal(ours(x), hf(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_geglu_equals_gemma_mlp(dtype: torch.dtype) -> None:
    spec = FeedForwardSpec(hidden_dim=32, intermediate_dim=64, activation="gelu_tanh")
    ours = FeedForward(spec).to(dtype)
    hf = GemmaMLP(
        GemmaConfig(
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=4,
            head_dim=8,
            hidden_activation="gelu_pytorch_tanh",
        )
    ).to(dtype)
    _copy_gated(ours, hf)
    x = torch.randn(4, 32, dtype=dtype)
    assert torch.equal(ours(x), hf(x))


def test_plain_gelu_mlp_with_bias_equals_gpt2_mlp() -> None:
    spec = FeedForwardSpec(
        hidden_dim=24, intermediate_dim=96, activation="gelu_tanh", gated=False, bias=True
    )
    ours = FeedForward(spec)
    assert ours.gate_proj is None
    hf = GPT2MLP(96, GPT2Config(n_embd=24, activation_function="gelu_new", resid_pdrop=0.0)).eval()
    with torch.no_grad():  # GPT-2's Conv1D stores [in, out]
        hf.c_fc.weight.copy_(ours.up_proj.weight.T)
        hf.c_fc.bias.copy_(ours.up_proj.bias)
        hf.c_proj.weight.copy_(ours.down_proj.weight.T)
        hf.c_proj.bias.copy_(ours.down_proj.bias)
    x = torch.randn(6, 24)
    torch.testing.assert_close(ours(x), hf(x), rtol=1e-6, atol=1e-6)


@st.composite
def ffn_specs(draw) -> FeedForwardSpec:
    return FeedForwardSpec(
        hidden_dim=draw(st.integers(1, 48)),
        intermediate_dim=draw(st.integers(1, 96)),
        activation=draw(st.sampled_from(ACTIVATIONS)),
        gated=draw(st.booleans()),
        bias=draw(st.booleans()),
    )


@settings(max_examples=40, deadline=None)
@given(spec=ffn_specs(), tokens=st.integers(1, 5), fuse=st.booleans())
def test_feed_forward_matches_reference(spec: FeedForwardSpec, tokens: int, fuse: bool) -> None:
    module = FeedForward(spec)
    weights = dict(module.state_dict())
    if fuse and spec.gated:
        module.fuse_gate_up()
    x = torch.randn(tokens, spec.hidden_dim)
    torch.testing.assert_close(
        module(x).double(), reference_feed_forward(x, weights, spec), rtol=1e-5, atol=1e-5
    )


def test_fuse_gate_up_keeps_the_math_and_stores_weights_once() -> None:
    spec = FeedForwardSpec(hidden_dim=16, intermediate_dim=24, bias=True)
    ffn = FeedForward(spec)
    x = torch.randn(4, 16)
    before = ffn(x)
    count = sum(p.numel() for p in ffn.parameters())
    ffn.fuse_gate_up()
    assert ffn.is_fused and ffn.gate_proj is None and ffn.up_proj is None
    names = set(ffn.state_dict())
    assert {"gate_up_proj.weight", "gate_up_proj.bias"} <= names
    assert not any(n.startswith(("gate_proj", "up_proj")) for n in names)
    assert sum(p.numel() for p in ffn.parameters()) == count
    assert ffn.gate_up_proj.weight.shape == (48, 16)
    torch.testing.assert_close(ffn(x), before, rtol=1e-6, atol=1e-6)
    ffn.fuse_gate_up()  # idempotent
    with pytest.raises(ValueError, match="gated"):
        FeedForward(FeedForwardSpec(hidden_dim=4, intermediate_dim=4, gated=False)).fuse_gate_up()


@pytest.mark.parametrize("bias", [False, True])
def test_fuse_gate_up_draws_nothing_and_keeps_requires_grad(bias: bool) -> None:
    ffn = FeedForward(FeedForwardSpec(hidden_dim=16, intermediate_dim=24, bias=bias)).to(
        torch.bfloat16
    )
    ffn.requires_grad_(False)
    state = torch.random.get_rng_state()
    ffn.fuse_gate_up()
    # no random initialisation of a weight about to be replaced (it dominated model loading)
    assert torch.equal(torch.random.get_rng_state(), state)
    fused = list(ffn.gate_up_proj.parameters())
    assert len(fused) == (2 if bias else 1)
    assert all(
        p.dtype == torch.bfloat16 and p.device.type == "cpu" and not p.requires_grad for p in fused
    )


def test_bad_input_is_reported() -> None:
    with pytest.raises(ValueError, match="hidden_dim=8"):
        FeedForward(FeedForwardSpec(hidden_dim=8, intermediate_dim=8))(torch.randn(2, 9))
    with pytest.raises(TypeError, match="FeedForwardSpec"):
        FeedForward(object())  # type: ignore[arg-type]


def test_create_module_builds_feed_forward() -> None:
    ffn = create_module(ModuleConfig(FeedForwardSpec(hidden_dim=4, intermediate_dim=8)))
    assert isinstance(ffn, FeedForward)
