"""The ``tttv2.models`` plugin for ``Qwen2MoeForCausalLM`` checkpoints: the library's
checkpoint loader (``tttv2.blocks.weights.load_hf_checkpoint``) with Qwen2-MoE's config
mapping and the family's tensor names; the model is the library's ``TransformerStack``."""

from __future__ import annotations

from functools import partial

from tttv2.blocks.weights import load_hf_checkpoint
from tttv2_model_qwen_moe.config import QWEN2_MOE, qwen2_moe_spec
from tttv2_model_qwen_moe.weights import rename_rules

ARCHITECTURE = "Qwen2MoeForCausalLM"

#: ``load(folder, *, dtype, device, progress=None, execution_strategy=None,
#: allow_nonfinite_weights=False) -> LoadedModel``
load = partial(
    load_hf_checkpoint, model_spec=qwen2_moe_spec, rename_rules=rename_rules, config_name=QWEN2_MOE
)
