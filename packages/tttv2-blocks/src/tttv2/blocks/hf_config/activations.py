"""Hugging Face activation names (``transformers.activations.ACT2CLS``) -> the names
:class:`~tttv2.core.specs.FeedForwardSpec` takes. ``gelu_new``, ``gelu_fast`` and
``gelu_pytorch_tanh`` are all the tanh approximation of GELU; ``swish`` is SiLU."""

from __future__ import annotations

from tttv2.blocks.hf_config.reader import HFConfig

HF_ACTIVATIONS: dict[str, str] = {
    "silu": "silu",
    "swish": "silu",
    "gelu": "gelu",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_new": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "relu": "relu",
}


def read_activation(cfg: HFConfig, key: str = "hidden_act", default: str = "silu") -> str:
    """The FeedForwardSpec activation for ``config[key]`` (a one-line error otherwise)."""
    name = cfg.raw(key, default)
    if not isinstance(name, str) or name not in HF_ACTIVATIONS:
        raise cfg.error(key, name, "one of " + ", ".join(HF_ACTIVATIONS))
    return HF_ACTIVATIONS[name]
