"""Mistral (MistralForCausalLM: Mistral 7B v0.1-v0.3, Mistral-Nemo-style explicit head_dim) for TTTv2: Hugging Face checkpoints as the library's ``TransformerStack``, composed
from released tttv2 blocks. Registered as the ``tttv2.models`` plugin ``MistralForCausalLM``."""

from tttv2_model_mistral.config import model_spec
from tttv2_model_mistral.plugin import ARCHITECTURE, load
from tttv2_model_mistral.weights import rename_rules

__all__ = ["ARCHITECTURE", "load", "model_spec", "rename_rules"]
