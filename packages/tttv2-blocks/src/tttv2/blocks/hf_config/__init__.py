"""Readers for Hugging Face ``config.json`` conventions that are not specific to any model:
typed fields with one-line errors (:class:`HFConfig`, :class:`HFConfigError`), RoPE in
every spelling (:func:`read_rope`), activation names (:func:`read_activation`),
``layer_types`` / sliding windows, ``head_dim`` defaults and eos/bos ids. A model's
``config.py`` composes them and keeps only what is its own."""

from tttv2.blocks.hf_config.activations import HF_ACTIVATIONS, read_activation
from tttv2.blocks.hf_config.errors import HFConfigError
from tttv2.blocks.hf_config.layer_types import (
    FULL,
    LAYER_TYPES,
    SLIDING,
    every_nth_full,
    read_layer_types,
    read_sliding_window,
)
from tttv2.blocks.hf_config.reader import MAX_INT, HFConfig
from tttv2.blocks.hf_config.rope import RULES as ROPE_RULES
from tttv2.blocks.hf_config.rope import read_rope, rope_parameters

__all__ = [
    "FULL",
    "HF_ACTIVATIONS",
    "LAYER_TYPES",
    "MAX_INT",
    "ROPE_RULES",
    "SLIDING",
    "HFConfig",
    "HFConfigError",
    "every_nth_full",
    "read_activation",
    "read_layer_types",
    "read_rope",
    "read_sliding_window",
    "rope_parameters",
]
