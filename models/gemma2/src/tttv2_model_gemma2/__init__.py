"""Gemma 2 for TTTv2: Hugging Face ``Gemma2ForCausalLM`` checkpoints as the library's
``TransformerStack``. Registered as the ``tttv2.models`` plugin ``Gemma2ForCausalLM``."""

from tttv2_model_gemma2.config import model_spec
from tttv2_model_gemma2.plugin import ARCHITECTURE, load
from tttv2_model_gemma2.weights import rename_rules

__all__ = ["ARCHITECTURE", "load", "model_spec", "rename_rules"]
