"""From command-line options to a loaded model: device, dtype, strategy, checkpoint."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, cast

import torch

from tttv2.cli.errors import UsageError
from tttv2.cli.progress import Bar
from tttv2.core.model_plugins import (
    LoadedModel,
    architecture_of,
    find_model_plugin,
    load_model,
    read_hf_config,
)
from tttv2.core.registry import StrategyRegistry

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def resolve_device(name: str) -> torch.device:
    """``auto`` -> the detected accelerator (tttv2.hw) or cpu; ``cuda`` must exist."""
    if name == "auto":
        return torch.device(_auto_device())
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            "--device cuda: no CUDA device is available (torch.cuda.is_available() is False)"
        )
    return torch.device(name)


def _auto_device() -> str:
    from tttv2.hw import DeviceConfig

    device = DeviceConfig.auto_detect().torch_device
    if device.startswith("cuda") and not torch.cuda.is_available():  # a forced profile
        return "cpu"
    return device


def check_strategy(name: str | None) -> None:
    """Fail before loading anything when ``--strategy`` names no registered strategy."""
    if name is not None:
        StrategyRegistry.get_class(name)


def check_checkpoint_folder(path: Path) -> None:
    if not path.exists():
        raise UsageError(f"--checkpoint {path}: no such folder")
    if not path.is_dir():
        raise UsageError(f"--checkpoint {path}: not a folder")


def load(
    checkpoint: Path,
    dtype: str,
    device: torch.device,
    strategy: str | None = None,
    *,
    show_progress: bool = False,
    capture_decode: bool = False,
    allow_nonfinite_weights: bool = False,
) -> LoadedModel:
    """Load through the model plugin for the checkpoint's architecture, with a progress bar,
    then switch to ``strategy`` when one is named. ``capture_decode``: the command owns the
    model and never changes it, so decode passes may skip re-checking what they bound
    (``capture_decode()`` of models that have it, e.g. ``tttv2.blocks.TransformerStack``).
    ``allow_nonfinite_weights`` is passed to the plugin's ``load`` (a plugin that does not
    take it is a usage error)."""
    check_strategy(strategy)
    check_checkpoint_folder(checkpoint)
    with Bar(
        show_progress, None, "loading weights", unit="B", unit_scale=True, unit_divisor=1024
    ) as bar:
        if allow_nonfinite_weights:
            loaded = _load_allowing_nonfinite(checkpoint, DTYPES[dtype], device, bar.load_callback)
        else:
            loaded = load_model(
                checkpoint, dtype=DTYPES[dtype], device=device, progress=bar.load_callback
            )
    if strategy is not None:
        switch = getattr(loaded.model, "switch_strategy", None)
        if switch is None:
            raise UsageError(
                f"--strategy {strategy}: {type(loaded.model).__name__} does not take execution strategies"
            )
        switch(strategy)
    loaded.model.eval()
    capture = getattr(loaded.model, "capture_decode", None)
    if capture_decode and callable(capture):
        capture()
    return loaded


def _load_allowing_nonfinite(
    checkpoint: Path, dtype: torch.dtype, device: torch.device, progress: Any
) -> LoadedModel:
    config = read_hf_config(checkpoint)
    architecture = architecture_of(config, str(checkpoint / "config.json"))
    plugin = find_model_plugin(architecture)
    params = inspect.signature(plugin.load).parameters
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    if "allow_nonfinite_weights" not in params and not takes_kwargs:
        raise UsageError(
            f"--allow-nonfinite-weights: the {architecture} plugin's load() does not take "
            "allow_nonfinite_weights (it is not built on tttv2.blocks.weights.load_hf_checkpoint)"
        )
    return plugin.load(  # type: ignore[call-arg]  # the ModelPlugin protocol lacks it; checked above
        checkpoint, dtype=dtype, device=device, progress=progress, allow_nonfinite_weights=True
    )


def build_native_kernels(device: torch.device) -> float:
    """Compile (first use) or load tttv2-hw's native CPU kernels now, so that the timings of
    what follows do not include compiling them; the seconds spent compiling (0.0 when every
    kernel came from the cache, is unavailable here, or ``device`` is not a CPU)."""
    if device.type != "cpu":
        return 0.0
    from tttv2.hw.kernels.native import native_status

    return sum(
        float(cast(float, s["seconds"])) for s in native_status().values() if s.get("compiled")
    )
