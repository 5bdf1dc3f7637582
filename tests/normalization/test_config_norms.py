"""Norms at real model configurations against Hugging Face: Gemma-2-2B's four sandwich
RMSNorms with unit offset (2304, eps 1e-6), Llama-3.1-8B's RMSNorm (4096, eps 1e-5) and
GPT-2's LayerNorm with bias (768).

On CPU the norms run tttv2-hw's native RMSNorm, which computes in Hugging Face's order
(fp32 mean of squares, fp32 products, one rounding) but sums the squares in another order
than torch: fp32 results agree to a few ulp and bf16 results to one rounding step, nearly
always bit for bit (the share of identical elements is asserted too)."""

from __future__ import annotations

import torch
from transformers.models.gemma2.modeling_gemma2 import Gemma2RMSNorm
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from tttv2.blocks import LayerNorm, RMSNorm
from tttv2.core import NormSpec


def test_gemma2_2b_unit_offset_norms_equal_hugging_face() -> None:
    torch.manual_seed(0)
    spec = NormSpec(dim=2304, eps=1e-6, unit_offset=True)
    x = torch.randn(4, 2304) * 5
    for _ in range(4):  # input, post-attention, pre-feedforward, post-feedforward
        ours, hf = RMSNorm(spec), Gemma2RMSNorm(2304, eps=1e-6)
        with torch.no_grad():
            ours.weight.normal_(0, 0.5)
            hf.weight.copy_(ours.weight)
            torch.testing.assert_close(ours(x), hf(x), rtol=2e-6, atol=1e-6)
            ours, hf = ours.to(torch.bfloat16), hf.to(torch.bfloat16)
            xb = x.to(torch.bfloat16)
            torch.testing.assert_close(ours(xb), hf(xb))
            assert (ours(xb) == hf(xb)).float().mean() > 0.97


def test_llama31_8b_rms_norm_equals_hugging_face() -> None:
    torch.manual_seed(0)
    ours, hf = RMSNorm(NormSpec(dim=4096, eps=1e-5)), LlamaRMSNorm(4096, eps=1e-5)
    x = torch.randn(3, 4096)
    with torch.no_grad():
        ours.weight.normal_(1, 0.2)
        hf.weight.copy_(ours.weight)
        torch.testing.assert_close(ours(x), hf(x), rtol=2e-6, atol=1e-6)
        # bfloat16: Llama rounds before multiplying by the weight, we after (one rounding apart)
        ours, hf, xb = ours.to(torch.bfloat16), hf.to(torch.bfloat16), x.to(torch.bfloat16)
        torch.testing.assert_close(ours(xb), hf(xb), rtol=1.6e-2, atol=1e-2)


def test_gpt2_layer_norm_equals_torch() -> None:
    torch.manual_seed(0)
    ours = LayerNorm(NormSpec(dim=768, norm_type="layer", eps=1e-5, bias=True))
    ref = torch.nn.LayerNorm(768, eps=1e-5)
    with torch.no_grad():
        ours.weight.normal_(1, 0.2)
        ours.bias.normal_(0, 0.2)
        ref.weight.copy_(ours.weight)
        ref.bias.copy_(ours.bias)
        x = torch.randn(5, 768) * 3 + 1
        assert torch.equal(ours(x), ref(x))
