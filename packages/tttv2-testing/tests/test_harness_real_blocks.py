"""The harness drives real tttv2.blocks modules against the readable references: norms and
feed-forward blocks over random specs, in fp32 and bf16."""

import pytest
import torch

from tttv2.blocks.building_blocks.feed_forward import FeedForward
from tttv2.blocks.building_blocks.normalization import make_norm
from tttv2.testing.harness import (
    check_component,
    check_component_property,
    register_component,
    unregister_component,
)
from tttv2.testing.reference.feed_forward import reference_feed_forward
from tttv2.testing.reference.normalization import reference_norm
from tttv2.testing.spec_strategies import ffn_specs, norm_specs


def tokens(size):
    return lambda spec, gen, device, dtype: torch.randn(7, getattr(spec, size), generator=gen).to(
        device, dtype
    )


@pytest.fixture(scope="module", autouse=True)
def components():
    register_component(
        "real_norm",
        norm_specs,
        lambda spec, device, strategy: make_norm(spec).to(device),
        tokens("dim"),
        lambda block, x, mode: block(x),
        lambda block, x: reference_norm(x, block.state_dict(), block.spec),
    )
    register_component(
        "real_ffn",
        ffn_specs,
        lambda spec, device, strategy: FeedForward(spec, device),
        tokens("hidden_dim"),
        lambda block, x, mode: block(x),
        lambda block, x: reference_feed_forward(x, block.state_dict(), block.spec),
    )
    yield
    unregister_component("real_norm")
    unregister_component("real_ffn")


@pytest.mark.parametrize("kind", ["real_norm", "real_ffn"])
def test_real_blocks_match_their_references(kind, dtype, seed):
    check_component_property(kind, max_examples=8, dtype=dtype, seed=seed)


def test_a_wrong_reference_is_caught():
    from tttv2.core.specs import NormSpec

    spec = NormSpec(dim=16, norm_type="rms", unit_offset=True)
    wrong = register_component(
        "wrong_norm",
        norm_specs,
        lambda spec, device, strategy: make_norm(spec),
        tokens("dim"),
        lambda block, x, mode: block(x),
        lambda block, x: reference_norm(
            x, block.state_dict(), block.spec.replace(unit_offset=False)
        ),
    )
    try:
        report = check_component(wrong, spec)
        assert not report.passed and "[forward] FAILED" in report.message
    finally:
        unregister_component("wrong_norm")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_a_scaled_norm_fails_in_every_precision(dtype):
    """PCC cannot see a wrong scale or offset (2 * y + 3 correlates perfectly with y); in
    reduced precision the norm-wise error must catch it where element-wise allclose only
    reports."""
    from tttv2.core.specs import NormSpec

    spec = NormSpec(dim=32, norm_type="rms")
    scaled = register_component(
        "scaled_norm",
        norm_specs,
        lambda spec, device, strategy: make_norm(spec).to(device),
        tokens("dim"),
        lambda block, x, mode: 2 * block(x) + 3,
        lambda block, x: reference_norm(x, block.state_dict(), block.spec),
    )
    try:
        report = check_component(scaled, spec, dtype=dtype)
        result = report.result(None)
        assert result.pcc.passed  # the PCC alone would let it through
        assert not report.passed and "[forward] FAILED" in report.message
        if dtype != torch.float32:
            assert not result.relative.passed and result.relative.rel_error > 1.0
            assert "relative L2 error" in report.message
        correct = check_component("real_norm", spec, dtype=dtype)
        assert correct.passed, correct.message
    finally:
        unregister_component("scaled_norm")
