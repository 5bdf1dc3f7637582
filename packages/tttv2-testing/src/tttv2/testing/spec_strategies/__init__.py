"""Hypothesis strategies producing small valid specs, and invalid variants of them.

Sizes are kept small (hidden dims <= 128, <= 8 heads of <= 16 (attention) or 32 (rope) channels,
<= 1024 positions) so a property test
over dozens of examples runs in seconds on a CPU.
"""

from tttv2.testing.spec_strategies.blocks import (
    attention_specs,
    embedding_specs,
    ffn_specs,
    kv_cache_specs,
    lm_head_specs,
    moe_specs,
    norm_specs,
)
from tttv2.testing.spec_strategies.composite import decoder_layer_specs, model_specs
from tttv2.testing.spec_strategies.invalid import (
    InvalidSpecCase,
    invalid_cases,
    invalid_spec_kwargs,
    specs_for,
)
from tttv2.testing.spec_strategies.rope import rope_specs

__all__ = [
    "InvalidSpecCase",
    "attention_specs",
    "decoder_layer_specs",
    "embedding_specs",
    "ffn_specs",
    "invalid_cases",
    "invalid_spec_kwargs",
    "kv_cache_specs",
    "lm_head_specs",
    "model_specs",
    "moe_specs",
    "norm_specs",
    "rope_specs",
    "specs_for",
]
