"""The example composition computes what the tttv2-testing references say it should.

Runs on the released wheels this project pins, with tttv2-testing's pytest plugin (the
``seed``, ``dtype`` and ``tolerance`` fixtures come from it)."""

import pytest
import torch
from tttv2_model_example import PreNormFeedForward, sublayer_specs
from tttv2_model_example.numbers import NORM_EPS

from tttv2.core.errors import SpecError
from tttv2.testing import assert_close, assert_pcc
from tttv2.testing.reference.feed_forward import reference_feed_forward
from tttv2.testing.reference.normalization import reference_norm

HIDDEN, INTERMEDIATE = 64, 160


def _run(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(the layer's output, the float64 reference) for random weights and input in `dtype`."""
    layer = PreNormFeedForward(HIDDEN, INTERMEDIATE)
    with torch.no_grad():  # random norm weights too (they start at one), so a mix-up shows
        for param in layer.parameters():
            param.copy_(torch.randn_like(param) * 0.2 + (1.0 if param.ndim == 1 else 0.0))
    layer = layer.to(dtype)
    x = torch.randn(7, HIDDEN).to(dtype)

    weights = layer.state_dict()
    norm_spec, ffn_spec = sublayer_specs(HIDDEN, INTERMEDIATE)
    norm_weights = {k.removeprefix("ffn_norm."): v for k, v in weights.items() if "norm" in k}
    ffn_weights = {k.removeprefix("ffn."): v for k, v in weights.items() if "norm" not in k}
    expected = x.double() + reference_feed_forward(
        reference_norm(x, norm_weights, norm_spec), ffn_weights, ffn_spec
    )
    with torch.no_grad():
        actual = layer(x)
    assert actual.dtype == dtype and actual.shape == x.shape
    return actual, expected


def test_float32_matches_the_reference_elementwise(seed):
    actual, expected = _run(torch.float32)
    assert_close(actual, expected, torch.float32)  # tttv2-testing's float32 preset


def test_every_dtype_tracks_the_reference(seed, dtype, tolerance):
    actual, expected = _run(dtype)
    assert_pcc(actual, expected, tolerance.pcc)


def test_the_model_numbers_reach_the_blocks():
    layer = PreNormFeedForward(HIDDEN, INTERMEDIATE)
    assert layer.ffn_norm.eps == NORM_EPS == 1e-5
    assert layer.ffn.spec.activation == "silu" and layer.ffn.spec.gated


def test_bad_sizes_are_rejected_naming_the_field():
    with pytest.raises(SpecError, match="intermediate_dim"):
        sublayer_specs(HIDDEN, 0)
