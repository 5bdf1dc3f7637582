"""GPT-2 for TTTv2: Hugging Face ``GPT2LMHeadModel`` checkpoints as the library's
``TransformerStack``. Registered as the ``tttv2.models`` plugin ``GPT2LMHeadModel``."""

from tttv2_model_gpt2.config import model_spec
from tttv2_model_gpt2.plugin import ARCHITECTURE, load
from tttv2_model_gpt2.weights import rename_rules

__all__ = ["ARCHITECTURE", "load", "model_spec", "rename_rules"]
