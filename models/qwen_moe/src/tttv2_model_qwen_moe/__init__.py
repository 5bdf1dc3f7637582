"""Qwen2-MoE (Qwen2MoeForCausalLM) and Qwen3-MoE (Qwen3MoeForCausalLM) for TTTv2: Hugging
Face checkpoints as the library's ``TransformerStack`` with sparse (mixture-of-experts) and
dense layers mixed as the config says, composed from released tttv2 blocks. Registered as
the ``tttv2.models`` plugins ``Qwen2MoeForCausalLM`` (module ``qwen2_moe``) and
``Qwen3MoeForCausalLM`` (module ``qwen3_moe``)."""

from tttv2_model_qwen_moe import qwen2_moe, qwen3_moe
from tttv2_model_qwen_moe.config import qwen2_moe_spec, qwen3_moe_spec
from tttv2_model_qwen_moe.weights import rename_rules

ARCHITECTURES = (qwen2_moe.ARCHITECTURE, qwen3_moe.ARCHITECTURE)

__all__ = [
    "ARCHITECTURES",
    "qwen2_moe",
    "qwen2_moe_spec",
    "qwen3_moe",
    "qwen3_moe_spec",
    "rename_rules",
]
