"""QK-norm with Gemma 3's unit offset against ``transformers``' Gemma3RMSNorm."""

from __future__ import annotations

import pytest
import torch
from transformers.models.gemma3.modeling_gemma3 import Gemma3RMSNorm

from tttv2.blocks.building_blocks.attention.qk_norm import HeadRMSNorm


def _pair(dtype: torch.dtype) -> tuple[HeadRMSNorm, Gemma3RMSNorm]:
    torch.manual_seed(0)
    hf = Gemma3RMSNorm(64, eps=1e-6).to(dtype)
    with torch.no_grad():
        hf.weight.copy_(0.2 * torch.randn(64))  # stored as weight - 1, as in Gemma 3 checkpoints
    ours = HeadRMSNorm(64, 1e-6, unit_offset=True).to(dtype)
    ours.load_state_dict(hf.state_dict())
    return ours, hf


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_unit_offset_equals_gemma3_rms_norm(dtype: torch.dtype) -> None:
    ours, hf = _pair(dtype)
    x = torch.randn(5, 4, 64).to(dtype)  # [T, heads, head_dim]
    with torch.no_grad():
        # on CPU the native RMSNorm sums squares in another order than torch: a few fp32 ulp
        torch.testing.assert_close(ours(x), hf(x), rtol=2e-6, atol=1e-6)


def test_unit_offset_keeps_precision_that_a_folded_bf16_weight_loses() -> None:
    """Folding the offset into a bf16 weight (1 + w rounded to bf16) is what the flag avoids."""
    ours, hf = _pair(torch.bfloat16)
    folded = HeadRMSNorm(64, 1e-6).to(torch.bfloat16)
    with torch.no_grad():
        folded.weight.copy_(hf.weight + 1.0)
        x = torch.randn(5, 4, 64).to(torch.bfloat16)
        assert not torch.equal(folded(x), hf(x))
        assert torch.equal(ours(x), hf(x))


def test_unit_offset_starts_at_zero_and_says_so() -> None:
    norm = HeadRMSNorm(8, 1e-6, unit_offset=True)
    assert torch.equal(norm.weight, torch.zeros(8))
    assert "unit_offset=True" in repr(norm)
