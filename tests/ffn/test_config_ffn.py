"""Feed-forward blocks at real model sizes against Hugging Face with shared weights:
Llama-3.1-8B SwiGLU (4096 -> 14336), GPT-2 MLP (768 -> 3072, gelu_tanh, biases),
Gemma-2-2B GeGLU (2304 -> 9216, float32 and bfloat16); fused gate/up at GPT-J-like size.

A few rows (decode) go through tttv2-hw's native product, which sums in another order than
torch's GEMM: results agree to one rounding, not bit for bit."""

from __future__ import annotations

import torch
from transformers import Gemma2Config, GPT2Config, LlamaConfig
from transformers.models.gemma2.modeling_gemma2 import Gemma2MLP
from transformers.models.gpt2.modeling_gpt2 import GPT2MLP
from transformers.models.llama.modeling_llama import LlamaMLP

from tttv2.blocks import FeedForward
from tttv2.core import FeedForwardSpec


def _hf_on_meta(build):
    with torch.device("meta"):
        return build()


def _share_gated(ours: FeedForward, hf: torch.nn.Module) -> None:
    for name in ("gate_proj", "up_proj", "down_proj"):
        setattr(hf, name, getattr(ours, name))  # same Linear: the weights exist once


def test_llama31_8b_swiglu_equals_llama_mlp() -> None:
    torch.manual_seed(0)
    ours = FeedForward(FeedForwardSpec(hidden_dim=4096, intermediate_dim=14336, activation="silu"))
    config = LlamaConfig(
        hidden_size=4096, intermediate_size=14336, num_attention_heads=32, hidden_act="silu"
    )
    hf = _hf_on_meta(lambda: LlamaMLP(config))
    _share_gated(ours, hf)
    x = torch.randn(3, 4096)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(x), rtol=1e-5, atol=1e-6)


def test_gpt2_mlp_equals_hugging_face() -> None:
    torch.manual_seed(0)
    spec = FeedForwardSpec(
        hidden_dim=768, intermediate_dim=3072, activation="gelu_tanh", gated=False, bias=True
    )
    ours = FeedForward(spec)
    with torch.no_grad():
        ours.up_proj.bias.normal_()
        ours.down_proj.bias.normal_()
    hf = GPT2MLP(
        3072, GPT2Config(n_embd=768, activation_function="gelu_new", resid_pdrop=0.0)
    ).eval()
    with torch.no_grad():  # Conv1D: [in, out]
        hf.c_fc.weight.copy_(ours.up_proj.weight.T)
        hf.c_fc.bias.copy_(ours.up_proj.bias)
        hf.c_proj.weight.copy_(ours.down_proj.weight.T)
        hf.c_proj.bias.copy_(ours.down_proj.bias)
        x = torch.randn(4, 768)
        torch.testing.assert_close(ours(x), hf(x), rtol=1e-5, atol=1e-5)


def test_gemma2_2b_geglu_equals_gemma2_mlp() -> None:
    torch.manual_seed(0)
    ours = FeedForward(
        FeedForwardSpec(hidden_dim=2304, intermediate_dim=9216, activation="gelu_tanh")
    )
    config = Gemma2Config(
        hidden_size=2304,
        intermediate_size=9216,
        num_attention_heads=8,
        head_dim=256,
        hidden_activation="gelu_pytorch_tanh",
    )
    hf = _hf_on_meta(lambda: Gemma2MLP(config))
    _share_gated(ours, hf)
    x = torch.randn(3, 2304)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(x), rtol=1e-5, atol=1e-6)
        ours.to(torch.bfloat16)
        xb = x.to(torch.bfloat16)
        torch.testing.assert_close(ours(xb), hf(xb))  # bf16: one rounding of each product


def test_fused_gate_up_at_real_size() -> None:
    torch.manual_seed(0)
    ffn = FeedForward(FeedForwardSpec(hidden_dim=1024, intermediate_dim=4096))
    x = torch.randn(5, 1024)
    with torch.no_grad():
        before = ffn(x)
        ffn.fuse_gate_up()
        torch.testing.assert_close(ffn(x), before, rtol=1e-5, atol=1e-6)
    assert sum(p.numel() for p in ffn.parameters()) == 3 * 1024 * 4096
