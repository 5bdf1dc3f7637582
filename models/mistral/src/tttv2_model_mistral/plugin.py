"""The ``tttv2.models`` plugin for ``MistralForCausalLM`` checkpoints: the library's
checkpoint loader (``tttv2.blocks.weights.load_hf_checkpoint``) with Mistral's config
mapping and tensor names; the model is the library's ``TransformerStack``."""

from __future__ import annotations

from functools import partial

from tttv2.blocks.weights import load_hf_checkpoint
from tttv2_model_mistral.config import OWNER, model_spec
from tttv2_model_mistral.weights import rename_rules

ARCHITECTURE = "MistralForCausalLM"

#: ``load(folder, *, dtype, device, progress=None, execution_strategy=None,
#: allow_nonfinite_weights=False) -> LoadedModel``
load = partial(
    load_hf_checkpoint, model_spec=model_spec, rename_rules=rename_rules, config_name=OWNER
)
