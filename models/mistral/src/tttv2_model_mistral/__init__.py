"""TTTv2 model project mistral.

Compose the model from released tttv2 building blocks (`tttv2.blocks`) here. Keep
model-specific numbers (scale factors, eps, offsets) in this package; nothing model-specific
goes into the libraries.

This package is the model plugin for MistralForCausalLM (entry point in group `tttv2.models` ->
`plugin.py`, whose `load` is tttv2.blocks.weights.load_hf_checkpoint with `config.py`'s
mapping and `weights.py`'s tensor names).
"""

ARCHITECTURE = "MistralForCausalLM"
"""Hugging Face architecture name served by this package (config.json "architectures")."""

from tttv2_model_mistral.plugin import load  # noqa: E402

__all__ = ["ARCHITECTURE", "load"]
