"""Phi-3 / Phi-3.5 / Phi-4-mini for TTTv2: Hugging Face ``Phi3ForCausalLM`` checkpoints as
the library's ``TransformerStack``. Registered as the ``tttv2.models`` plugin
``Phi3ForCausalLM``."""

from tttv2_model_phi3.config import model_spec
from tttv2_model_phi3.plugin import ARCHITECTURE, load
from tttv2_model_phi3.weights import rename_rules

__all__ = ["ARCHITECTURE", "load", "model_spec", "rename_rules"]
