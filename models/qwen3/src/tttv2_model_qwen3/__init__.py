"""Qwen3 dense (Qwen3ForCausalLM) for TTTv2: Hugging Face checkpoints as the library's ``TransformerStack``, composed
from released tttv2 blocks. Registered as the ``tttv2.models`` plugin ``Qwen3ForCausalLM``."""

from tttv2_model_qwen3.config import model_spec
from tttv2_model_qwen3.plugin import ARCHITECTURE, load
from tttv2_model_qwen3.weights import rename_rules

__all__ = ["ARCHITECTURE", "load", "model_spec", "rename_rules"]
