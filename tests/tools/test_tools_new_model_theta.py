"""new_model's default RoPE base: a config class that declares one base per layer kind
(Gemma 3: a dict) must not crash the scaffold (it used to: float() of a dict)."""

from __future__ import annotations

import pytest
import transformers
from new_model import default_theta


class _OneBase:
    default_theta = 500000


class _PerLayerKind:
    default_theta = {"global": 1_000_000.0, "local": 10_000.0}


class _NoBase:
    pass


@pytest.mark.parametrize(
    ("config_class", "expected"),
    [(_OneBase, 500000.0), (_PerLayerKind, 10000.0), (_NoBase, 10000.0)],
)
def test_default_theta(config_class: type, expected: float) -> None:
    assert default_theta(config_class) == expected


def test_gemma3_text_config_scaffolds() -> None:
    assert default_theta(transformers.Gemma3TextConfig) == 10000.0
