"""Gemma 3 (text) for TTTv2: Hugging Face ``Gemma3ForCausalLM`` checkpoints as the library's
``TransformerStack``, composed from released tttv2 blocks. Registered as the ``tttv2.models``
plugin ``Gemma3ForCausalLM``."""

from tttv2_model_gemma3.config import model_spec
from tttv2_model_gemma3.plugin import ARCHITECTURE, load
from tttv2_model_gemma3.weights import rename_rules

__all__ = ["ARCHITECTURE", "load", "model_spec", "rename_rules"]
