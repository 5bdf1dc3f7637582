"""What tools/new_model.py writes into a model's config.py and weights.py, read from
transformers itself: the fields the architecture's config class declares (mapped where
tttv2.blocks.hf_config knows them, a TODO where not) and the parameter names the
architecture has on the meta device (rename rules to tttv2.blocks.TransformerStack's
names where the convention is known, a TODO target where not)."""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

#: Config fields the generated mapping reads through tttv2.blocks.hf_config.
MAPPED = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "hidden_act", "max_position_embeddings", "rms_norm_eps",
    "tie_word_embeddings", "attention_bias", "mlp_bias", "rope_parameters", "rope_scaling",
    "rope_theta", "partial_rotary_factor", "bos_token_id", "eos_token_id",
)  # fmt: skip
#: Fields that do not change inference output (training, caching, output format).
IGNORED = (
    "initializer_range", "use_cache", "pad_token_id", "attention_dropout", "pretraining_tp",
    "output_attentions", "output_hidden_states", "return_dict", "torch_dtype", "dtype",
    "embd_pdrop", "resid_pdrop", "hidden_dropout", "dropout", "classifier_dropout",
)  # fmt: skip

#: Hugging Face decoder-layer parameter names -> TransformerStack layer names.
LAYER_NAMES = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attention.q_proj",
    "self_attn.k_proj": "attention.k_proj",
    "self_attn.v_proj": "attention.v_proj",
    "self_attn.o_proj": "attention.o_proj",
    "self_attn.q_norm": "attention.q_norm",
    "self_attn.k_norm": "attention.k_norm",
    "mlp.gate_proj": "ffn.gate_proj",
    "mlp.up_proj": "ffn.up_proj",
    "mlp.down_proj": "ffn.down_proj",
    "pre_feedforward_layernorm": "ffn_norm",
    "post_feedforward_layernorm": "post_ffn_norm",
}
TOP_NAMES = {"model.embed_tokens": "embedding", "model.norm": "final_norm", "lm_head": "lm_head"}


def transformers_class(architecture: str) -> Any:
    import transformers

    cls = getattr(transformers, architecture, None)
    if cls is None or getattr(cls, "config_class", None) is None:
        raise ValueError(f"transformers has no model class {architecture!r} with a config_class")
    return cls


def config_fields(config_class: Any) -> list[str]:
    """The fields ``config_class`` declares beyond transformers' ``PreTrainedConfig``
    (dataclass fields in transformers 5, the ``__init__`` parameters before), in
    declaration order."""
    from transformers import PretrainedConfig

    def declared(cls: Any) -> list[str]:
        if dataclasses.is_dataclass(cls):
            return [f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")]
        params = inspect.signature(cls.__init__).parameters
        return [n for n, p in params.items() if n != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]

    base = set(declared(PretrainedConfig))
    return [name for name in declared(config_class) if name not in base or name in MAPPED]


def meta_parameter_names(architecture: str) -> list[str]:
    """Every state-dict name of ``architecture`` built on the meta device (default config,
    two layers)."""
    import torch

    cls = transformers_class(architecture)
    config = cls.config_class(num_hidden_layers=2)
    with torch.device("meta"):
        model = cls(config)
    return list(model.state_dict())


def rename_rules_source(names: list[str]) -> list[str]:
    """Rule lines ``(pattern, replacement),`` for ``names`` (layer indices generalised)."""
    sandwich = any(
        "pre_feedforward_layernorm" in n for n in names
    )  # post_attention_* is then a post-norm
    lines: list[str] = []
    seen: set[str] = set()
    for name in names:
        m = re.fullmatch(r"(.*?)\.layers\.\d+\.(.+)\.(weight|bias)", name)
        if m:
            prefix, inner = m.group(1), m.group(2)
            target = LAYER_NAMES.get(inner)
            if inner == "post_attention_layernorm" and sandwich:
                target = "post_attn_norm"
            pattern = rf"{re.escape(prefix)}\.layers\.(\d+)\.{re.escape(inner)}\.(weight|bias)"
            repl = rf"layers.\1.{target}.\2" if target else None
        else:
            stem, _, kind = name.rpartition(".")
            target = TOP_NAMES.get(stem)
            pattern = rf"{re.escape(stem)}\.{kind}"
            repl = f"{target}.{kind}" if target else None
        if pattern in seen:
            continue
        seen.add(pattern)
        if repl is None:
            lines.append(
                f'(r"{pattern}", "TODO.{name}"),  # TODO: map to a TransformerStack name (or None to skip on purpose)'
            )
        elif pattern.startswith("lm_head"):
            lines.append(f'(r"{pattern}", None if spec.lm_head.tied else "{repl}"),')
        else:
            lines.append(f'(r"{pattern}", r"{repl}"),')
    return lines


def classify_fields(fields: list[str]) -> tuple[list[str], list[str], list[str]]:
    """``(mapped, ignored, todo)`` among ``fields``."""
    mapped = [f for f in fields if f in MAPPED]
    ignored = [f for f in fields if f in IGNORED]
    todo = [f for f in fields if f not in MAPPED and f not in IGNORED]
    return mapped, ignored, todo
