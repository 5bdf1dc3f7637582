"""Llama (1, 2, 3, 3.1, 3.2, ...) for TTTv2: Hugging Face ``LlamaForCausalLM``
checkpoints as the library's ``TransformerStack``. Registered as the ``tttv2.models``
plugin ``LlamaForCausalLM``."""

from tttv2_llama3.config import model_spec, rope_spec
from tttv2_llama3.plugin import ARCHITECTURE, load
from tttv2_llama3.weights import rename_rules

__all__ = ["ARCHITECTURE", "load", "model_spec", "rename_rules", "rope_spec"]
