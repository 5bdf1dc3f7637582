"""Qwen2 and Qwen2.5 (Qwen2ForCausalLM) for TTTv2: Hugging Face checkpoints as the library's ``TransformerStack``, composed
from released tttv2 blocks. Registered as the ``tttv2.models`` plugin ``Qwen2ForCausalLM``."""

from tttv2_model_qwen2.config import model_spec
from tttv2_model_qwen2.plugin import ARCHITECTURE, load
from tttv2_model_qwen2.weights import rename_rules

__all__ = ["ARCHITECTURE", "load", "model_spec", "rename_rules"]
