"""RopeSpec.factor=None is derived as Hugging Face derives a missing factor: for YaRN and
LongRoPE ``max_position / original_max_position`` (Phi-3's config.json gives no factor),
for the other rules 1.0. Specs written with an explicit factor load unchanged."""

from __future__ import annotations

import math

import pytest

from tttv2.core import ModuleSpec, RopeSpec, SpecError

rope_utils = pytest.importorskip("transformers.modeling_rope_utils")
transformers = pytest.importorskip("transformers")

HEAD_DIM = 8
HALF = HEAD_DIM // 2


def phi3_like(max_position: int, original: int) -> tuple[RopeSpec, object]:
    """The same LongRoPE model as a RopeSpec and as a Hugging Face config, without a factor."""
    short, long = [1.0, 1.5, 2.0, 3.0], [2.0, 4.0, 8.0, 16.0]
    spec = RopeSpec(
        head_dim=HEAD_DIM,
        theta=10000.0,
        max_position=max_position,
        scaling="longrope",
        original_max_position=original,
        short_factor=short,
        long_factor=long,
    )
    config = transformers.Phi3Config(
        hidden_size=HEAD_DIM * 4,
        num_attention_heads=4,
        max_position_embeddings=max_position,
        original_max_position_embeddings=original,
        rope_parameters={
            "rope_type": "longrope",
            "rope_theta": 10000.0,
            "short_factor": short,
            "long_factor": long,
        },
    )
    return spec, config


def yarn_like(max_position: int, original: int) -> tuple[RopeSpec, object]:
    spec = RopeSpec(
        head_dim=HEAD_DIM,
        theta=10000.0,
        max_position=max_position,
        scaling="yarn",
        original_max_position=original,
    )
    config = transformers.LlamaConfig(
        hidden_size=HEAD_DIM * 4,
        num_attention_heads=4,
        max_position_embeddings=max_position,
        rope_parameters={
            "rope_type": "yarn",
            "rope_theta": 10000.0,
            "factor": None,
            "original_max_position_embeddings": original,
        },
    )
    return spec, config


def longrope_scaling(spec: RopeSpec) -> float:
    """LongRoPE's cos/sin scale from the spec's numbers (the paper's formula)."""
    if spec.factor <= 1.0:
        return 1.0
    return math.sqrt(1 + math.log(spec.factor) / math.log(spec.original_max_position))


def yarn_scaling(spec: RopeSpec) -> float:
    return 1.0 if spec.factor <= 1 else 0.1 * math.log(spec.factor) + 1.0


@pytest.mark.parametrize(("max_position", "original"), [(131072, 4096), (4096, 4096), (6000, 4096)])
def test_longrope_without_factor_scales_attention_as_transformers(
    max_position: int, original: int
) -> None:
    spec, config = phi3_like(max_position, original)
    assert spec.factor == max_position / original
    _, hf_scaling = rope_utils.ROPE_INIT_FUNCTIONS["longrope"](config, "cpu")
    assert longrope_scaling(spec) == pytest.approx(hf_scaling, rel=1e-12)


@pytest.mark.parametrize(("max_position", "original"), [(32768, 4096), (4096, 4096)])
def test_yarn_without_factor_scales_attention_as_transformers(
    max_position: int, original: int
) -> None:
    spec, config = yarn_like(max_position, original)
    assert spec.factor == max_position / original
    _, hf_scaling = rope_utils.ROPE_INIT_FUNCTIONS["yarn"](config, "cpu")
    assert yarn_scaling(spec) == pytest.approx(hf_scaling, rel=1e-12)


def test_phi3_mini_128k_factor() -> None:
    """microsoft/Phi-3-mini-128k-instruct: 131072 positions over 4096 pretrained."""
    spec, _ = phi3_like(131072, 4096)
    assert spec.factor == 32.0
    assert longrope_scaling(spec) == pytest.approx(math.sqrt(1 + math.log(32) / math.log(4096)))


@pytest.mark.parametrize("scaling", ["default", "linear", "dynamic"])
def test_other_rules_default_to_factor_one(scaling: str) -> None:
    assert RopeSpec(head_dim=HEAD_DIM, scaling=scaling, max_position=8192).factor == 1.0
    spec = RopeSpec(
        head_dim=HEAD_DIM,
        scaling="llama3",
        max_position=8192,
        original_max_position=1024,
        low_freq_factor=1.0,
        high_freq_factor=4.0,
    )
    assert spec.factor == 1.0


def test_explicit_factors_and_serialized_specs_are_kept() -> None:
    spec, _ = phi3_like(131072, 4096)
    explicit = spec.replace(factor=8.0)
    assert explicit.factor == 8.0
    assert spec.replace(factor=None, max_position=8192).factor == 2.0  # None: derived again
    old = spec.to_dict() | {"factor": 1.0}  # written before factor could be derived
    assert ModuleSpec.from_dict(old).factor == 1.0
    missing = {k: v for k, v in spec.to_dict().items() if k != "factor"}
    assert ModuleSpec.from_dict(missing) == spec
    for bad in (0.0, -1.0, math.inf, "2"):
        with pytest.raises(SpecError, match="RopeSpec.factor="):
            spec.replace(factor=bad)
