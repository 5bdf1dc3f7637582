"""Readable reference for feed-forward blocks (the math of ``FeedForwardSpec``), float64.

Weights by their Hugging Face names (``gate_proj.weight`` ``[inter, hidden]``,
``up_proj.*``, ``down_proj.*``, biases when ``spec.bias``), i.e. the ``state_dict()`` of an
unfused block. Activations are written out from their definitions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from tttv2.core.specs import FeedForwardSpec


def silu(x: torch.Tensor) -> torch.Tensor:
    return x / (1 + torch.exp(-x))


def gelu(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def relu(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x > 0, x, torch.zeros_like(x))


REFERENCE_ACTIVATIONS = {"silu": silu, "gelu": gelu, "gelu_tanh": gelu_tanh, "relu": relu}


def _linear(x: torch.Tensor, weights: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
    y = x @ weights[f"{name}.weight"].detach().to(torch.float64).T
    bias = weights.get(f"{name}.bias")
    return y if bias is None else y + bias.detach().to(torch.float64)


def reference_feed_forward(
    x: torch.Tensor, weights: Mapping[str, torch.Tensor], spec: FeedForwardSpec
) -> torch.Tensor:
    """``[T, hidden]`` -> ``[T, hidden]`` in float64."""
    x = x.detach().to(torch.float64)
    act = REFERENCE_ACTIVATIONS[spec.activation]
    if spec.gated:
        inner = act(_linear(x, weights, "gate_proj")) * _linear(x, weights, "up_proj")
    else:
        inner = act(_linear(x, weights, "up_proj"))
    return _linear(inner, weights, "down_proj")
