"""RMSNorm and LayerNorm: equal to Hugging Face's (LlamaRMSNorm, GemmaRMSNorm with its unit
offset, nn.LayerNorm with and without bias) and to the float64 reference for random specs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.models.gemma.modeling_gemma import GemmaRMSNorm
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from tttv2.blocks import LayerNorm, RMSNorm, make_norm
from tttv2.core import ModuleConfig, NormSpec, create_module
from tttv2.testing.reference.normalization import reference_norm


def _randomize(module: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p))
    return module


def test_rms_norm_equals_llama_rms_norm_in_float32() -> None:
    spec = NormSpec(dim=64, eps=1e-5)
    ours = _randomize(RMSNorm(spec))
    hf = LlamaRMSNorm(64, eps=1e-5)
    hf.weight = ours.weight
    x = torch.randn(7, 64) * 3
    assert torch.equal(ours(x), hf(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_unit_offset_equals_gemma_rms_norm_bit_for_bit(dtype: torch.dtype) -> None:
    spec = NormSpec(dim=48, eps=1e-6, unit_offset=True)
    ours = _randomize(RMSNorm(spec)).to(dtype)
    hf = GemmaRMSNorm(48, eps=1e-6).to(dtype)
    hf.weight = ours.weight
    x = (torch.randn(5, 48) * 4).to(dtype)
    y = ours(x)
    assert y.dtype == dtype
    assert torch.equal(y, hf(x))


def test_unit_offset_starts_as_identity_scale() -> None:
    norm = RMSNorm(NormSpec(dim=8, unit_offset=True))
    assert torch.equal(norm.weight, torch.zeros(8))
    x = torch.randn(3, 8)
    torch.testing.assert_close(norm(x), x / x.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt())


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_layer_norm_equals_torch_layer_norm(bias: bool, dtype: torch.dtype) -> None:
    spec = NormSpec(dim=32, norm_type="layer", eps=1e-5, bias=bias)
    ours = _randomize(LayerNorm(spec)).to(dtype)
    ref = torch.nn.LayerNorm(32, eps=1e-5, bias=bias, dtype=dtype)
    ref.weight = ours.weight
    if bias:
        ref.bias = ours.bias
    else:
        assert ours.bias is None and "bias" not in dict(ours.named_parameters())
    x = torch.randn(4, 32, dtype=dtype) + 2
    assert torch.equal(ours(x), ref(x))


@st.composite
def norm_specs(draw) -> NormSpec:
    norm_type = draw(st.sampled_from(["rms", "layer"]))
    return NormSpec(
        dim=draw(st.integers(1, 96)),
        norm_type=norm_type,
        eps=draw(st.sampled_from([1e-6, 1e-5, 1e-3])),
        unit_offset=draw(st.booleans()),
        bias=norm_type == "layer" and draw(st.booleans()),
    )


@settings(max_examples=40, deadline=None)
@given(
    spec=norm_specs(),
    tokens=st.integers(1, 6),
    scale=st.floats(0.01, 100.0),
    leading_heads=st.booleans(),
)
def test_norms_match_reference(
    spec: NormSpec, tokens: int, scale: float, leading_heads: bool
) -> None:
    module = _randomize(make_norm(spec))
    assert isinstance(module, RMSNorm if spec.norm_type == "rms" else LayerNorm)
    shape = (tokens, 3, spec.dim) if leading_heads else (tokens, spec.dim)  # any leading dims
    x = torch.randn(shape) * scale
    expected = reference_norm(x, module.state_dict(), spec)
    torch.testing.assert_close(module(x).double(), expected, rtol=1e-5, atol=1e-5)


def test_rms_norm_accumulates_in_float32_for_half_inputs() -> None:
    # float16 squares of 300 overflow (9e4 > 65504); float32 accumulation does not
    x = torch.full((1, 16), 300.0, dtype=torch.float16)
    y = RMSNorm(NormSpec(dim=16)).half()(x)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y.float(), torch.ones(1, 16), rtol=1e-3, atol=1e-3)


def test_wrong_width_and_wrong_spec_are_reported() -> None:
    with pytest.raises(ValueError, match="dim=8"):
        RMSNorm(NormSpec(dim=8))(torch.randn(2, 7))
    with pytest.raises(TypeError, match="norm_type='rms'"):
        RMSNorm(NormSpec(dim=8, norm_type="layer"))
    with pytest.raises(TypeError, match="NormSpec"):
        make_norm("rms")  # type: ignore[arg-type]


def test_create_module_builds_the_right_norm() -> None:
    assert isinstance(create_module(ModuleConfig(NormSpec(dim=4))), RMSNorm)
    layer = create_module(ModuleConfig(NormSpec(dim=4, norm_type="layer", bias=True)))
    assert isinstance(layer, LayerNorm) and layer.bias is not None
