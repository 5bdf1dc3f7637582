"""Checks made from the safetensors headers and the spec alone, before a model is built:
every tensor that will be loaded has a floating-point dtype, and the model ``config.json``
implies is no larger than the tensors on disk and fits the device's free memory."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch

from tttv2.blocks.weights.checkpoint import SafetensorsCheckpoint
from tttv2.blocks.weights.errors import CheckpointSizeError, WeightDtypeError
from tttv2.core.specs import ModelSpec

#: safetensors dtypes a floating-point parameter may be loaded from (cast as copied).
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")

#: The model may need at most this many times the elements the checkpoint stores
#: (transforms and splits move elements, they never create them; the margin only keeps
#: an approximate parameter count from refusing a real checkpoint).
SIZE_MARGIN = 1.5


def check_tensor_dtypes(
    checkpoint: SafetensorsCheckpoint, loaded: Callable[[str], bool] = lambda name: True
) -> None:
    """:class:`WeightDtypeError` naming every tensor ``loaded(name)`` says is loaded whose
    dtype is not one of :data:`FLOAT_DTYPES`."""
    bad = [
        f"{name} ({info.dtype})"
        for name, info in checkpoint.tensors.items()
        if info.dtype not in FLOAT_DTYPES and loaded(name)
    ]
    if bad:
        raise WeightDtypeError(
            f"checkpoint {checkpoint.folder}: {len(bad)} tensor(s) are not floating-point "
            f"(expected one of {', '.join(FLOAT_DTYPES)}): " + ", ".join(bad)
        )


#: The keys Hugging Face configs store the number of decoder layers under.
LAYER_COUNT_KEYS = ("num_hidden_layers", "n_layer", "num_layers")


def check_layer_count(
    config: Any, checkpoint: SafetensorsCheckpoint, source: Any = "config.json"
) -> None:
    """Before any spec is built: a layer count (an integer under one of
    :data:`LAYER_COUNT_KEYS`) above the number of stored tensors cannot be these weights
    (every layer stores at least one), and building ten million layer specs would take
    minutes. Other values are left to the model's mapping."""
    for key in LAYER_COUNT_KEYS:
        value = config.get(key) if isinstance(config, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and value > len(checkpoint):
            raise CheckpointSizeError(
                f"{source}: {key}={value} but the safetensors in {checkpoint.folder} hold "
                f"{len(checkpoint)} tensors (every layer stores at least one): the config "
                "does not describe these weights"
            )


def implied_parameters(spec: ModelSpec) -> int:
    """The parameter count of ``spec`` (layers sharing one spec object are counted once
    and multiplied, so ten million identical layers cost one count)."""
    from tttv2.hw.memory.param_count import (
        embedding_params,
        layer_params,
        lm_head_params,
        norm_params,
    )

    first = dict(zip(map(id, spec.layers), spec.layers, strict=True))
    repeats = Counter(map(id, spec.layers))
    layers = sum(layer_params(first[key]).total * n for key, n in repeats.items())
    return (
        embedding_params(spec.embedding)
        + layers
        + norm_params(spec.final_norm)
        + lm_head_params(spec.lm_head)
    )


def available_bytes(device: torch.device | str) -> int | None:
    """Free memory of ``device`` (``None`` where it is not known, e.g. ``meta``)."""
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info(dev)[0])
    if dev.type == "cpu":
        from tttv2.hw.device.cpu import detect_cpu

        return int(detect_cpu().memory_available_bytes)
    return None


def check_sizes(
    spec: ModelSpec,
    checkpoint: SafetensorsCheckpoint,
    dtype: torch.dtype,
    device: torch.device | str,
    source: Any = "config.json",
) -> int:
    """Refuse (:class:`CheckpointSizeError`) a ``spec`` whose parameters outnumber the
    checkpoint's stored elements, or whose weights in ``dtype`` exceed ``device``'s free
    memory; the parameter count otherwise."""
    params = implied_parameters(spec)
    stored = sum(math.prod(info.shape) for info in checkpoint.tensors.values())
    what = f"{spec.num_layers} layers, hidden size {spec.hidden_dim}, vocabulary {spec.vocab_size}"
    if params > SIZE_MARGIN * stored:
        raise CheckpointSizeError(
            f"{source} implies {params:,} parameters ({what}) but the safetensors in "
            f"{checkpoint.folder} hold {stored:,} elements: the config does not describe "
            "these weights"
        )
    need = params * torch.empty((), dtype=dtype).element_size()
    free = available_bytes(device)
    if free is not None and need > free:
        raise CheckpointSizeError(
            f"{source}: the weights need {need / 2**30:.2f} GiB in {dtype} ({params:,} "
            f"parameters, {what}) but {device} has {free / 2**30:.2f} GiB free"
        )
    return params
