"""Mixtral (MixtralForCausalLM) for TTTv2: Hugging Face checkpoints as the library's
``TransformerStack`` with a top-k mixture of experts in every layer, composed from released
tttv2 blocks. Registered as the ``tttv2.models`` plugin ``MixtralForCausalLM``."""

from tttv2_model_mixtral.config import model_spec
from tttv2_model_mixtral.plugin import ARCHITECTURE, load
from tttv2_model_mixtral.weights import rename_rules

__all__ = ["ARCHITECTURE", "load", "model_spec", "rename_rules"]
