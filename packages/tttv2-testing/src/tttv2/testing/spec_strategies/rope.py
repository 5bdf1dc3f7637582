"""Hypothesis strategies for valid ``RopeSpec``s: every scaling rule with sensible params."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tttv2.core.specs import ROPE_SCALINGS, RopeSpec

# Small tables keep cos/sin construction cheap in property tests.
MAX_POSITION = 512


@st.composite
def rope_specs(
    draw: st.DrawFn,
    head_dim: int | None = None,
    scalings: tuple[str, ...] = ROPE_SCALINGS,
    max_position: int | None = None,
) -> RopeSpec:
    """A valid RopeSpec. ``head_dim`` (even recommended) and ``max_position`` may be
    fixed; ``scalings`` limits the rules drawn (default: all of them)."""
    unknown = sorted(set(scalings) - set(ROPE_SCALINGS))
    if unknown or not scalings:
        raise ValueError(f"scalings must be a non-empty subset of {ROPE_SCALINGS}, got {scalings}")
    if head_dim is None:
        head_dim = draw(st.integers(1, 16).map(lambda n: 2 * n))
    if head_dim < 2:
        raise ValueError(f"head_dim must be >= 2 to hold a rotary pair, got {head_dim}")
    rotary_dim = draw(
        st.one_of(st.just(head_dim), st.integers(1, head_dim // 2).map(lambda n: 2 * n))
    )
    scaling = draw(st.sampled_from(scalings))
    kwargs: dict[str, Any] = {
        "head_dim": head_dim,
        "rotary_dim": rotary_dim,
        "theta": draw(st.sampled_from([100.0, 10000.0, 500000.0, 1000000.0])),
        "scaling": scaling,
        "interleaved": draw(st.booleans()),
    }
    original = draw(st.sampled_from([16, 32, 64, 128]))
    factor = draw(st.sampled_from([1.0, 2.0, 4.0, 8.0]))
    if scaling == "default":
        kwargs["max_position"] = max_position or draw(st.integers(8, MAX_POSITION))
    elif scaling == "linear":
        kwargs.update(factor=factor, max_position=max_position or int(original * factor))
    elif scaling == "dynamic":
        kwargs.update(
            factor=factor,
            original_max_position=draw(st.one_of(st.none(), st.just(original))),
            max_position=max_position or int(original * factor),
        )
    elif scaling == "yarn":
        beta_slow = draw(st.sampled_from([1.0, 2.0]))
        kwargs.update(
            factor=factor,
            original_max_position=original,
            max_position=max_position or int(original * factor),
            beta_fast=draw(st.one_of(st.none(), st.sampled_from([16.0, 32.0]))),
            beta_slow=draw(st.one_of(st.none(), st.just(beta_slow))),
            attention_factor=draw(st.one_of(st.none(), st.floats(0.5, 2.0))),
            mscale=draw(st.one_of(st.none(), st.sampled_from([0.707, 1.0]))),
            mscale_all_dim=draw(st.one_of(st.none(), st.sampled_from([0.0, 0.707, 1.0]))),
            truncate=draw(st.booleans()),
        )
    elif scaling == "llama3":
        low = draw(st.sampled_from([1.0, 2.0]))
        kwargs.update(
            factor=factor,
            original_max_position=original,
            max_position=max_position or int(original * factor),
            low_freq_factor=low,
            high_freq_factor=low + draw(st.sampled_from([1.0, 3.0])),
        )
    else:  # longrope
        half = rotary_dim // 2
        factors = st.lists(st.floats(1.0, 8.0), min_size=half, max_size=half).map(tuple)
        kwargs.update(
            factor=factor,
            original_max_position=original,
            max_position=max_position or int(original * factor),
            short_factor=draw(factors),
            long_factor=draw(factors),
            attention_factor=draw(st.one_of(st.none(), st.floats(0.5, 2.0))),
        )
    return RopeSpec(**kwargs)
