"""Model plugins: how an installed model project says "I can load this checkpoint".

A model project registers an entry point in the ``tttv2.models`` group named after the
Hugging Face architecture it implements (the ``architectures`` entry of ``config.json``)::

    [project.entry-points."tttv2.models"]
    LlamaForCausalLM = "tttv2_llama3.plugin"

The entry point resolves to anything with a ``load`` callable (a module or an object)::

    def load(checkpoint_dir, *, dtype, device, progress=None) -> LoadedModel

``progress(name, done, total)`` reports loading progress in bytes. Nothing in the
library imports a model: tools find one with :func:`find_model_plugin` or load a folder
with :func:`load_model`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

import torch

from tttv2.core.errors import InputError, TTTv2Error, UnknownNameError
from tttv2.core.specs.model import ModelSpec

ENTRY_POINT_GROUP = "tttv2.models"

#: ``progress(tensor name, bytes loaded so far, total bytes)``
ProgressCallback = Callable[[str, int, int], None]


class ModelLoadError(InputError, TTTv2Error, ValueError):
    """A checkpoint folder cannot be handed to a plugin (no folder, no usable
    ``config.json``), or an installed plugin is broken."""


@dataclass
class LoadedModel:
    """What a plugin returns: the model and what a generator needs to drive it.

    ``model`` follows the ``tttv2.serve.runtime.CausalLM`` protocol. ``tokenizer`` is a
    ``tokenizers.Tokenizer`` (``None`` when the folder has no ``tokenizer.json``).
    ``max_context`` is the longest sequence (prompt + generated tokens) the model takes.
    """

    model: Any
    spec: ModelSpec
    hf_config: dict[str, Any]
    tokenizer: Any | None
    eos_token_ids: tuple[int, ...]
    bos_token_id: int | None
    max_context: int


class ModelPlugin(Protocol):
    def load(
        self,
        checkpoint_dir: str | Path,
        *,
        dtype: torch.dtype,
        device: torch.device | str,
        progress: ProgressCallback | None = None,
    ) -> LoadedModel: ...


_registered: dict[str, ModelPlugin] = {}
_loaded: dict[str, ModelPlugin] = {}


def register_model_plugin(architecture: str, plugin: ModelPlugin) -> None:
    """Register a plugin in this process (tests, notebooks); installed packages use the
    entry point instead. Replaces an earlier registration of ``architecture``."""
    _check_plugin(architecture, plugin, "registered object")
    _registered[architecture] = plugin


def unregister_model_plugin(architecture: str) -> None:
    _registered.pop(architecture, None)


def list_model_plugins() -> dict[str, str]:
    """Every available architecture -> where its plugin comes from (the entry point's
    ``module:attr``, or ``"registered"``), sorted by architecture."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    found |= {arch: "registered" for arch in _registered}
    return dict(sorted(found.items()))


def find_model_plugin(architecture: str) -> ModelPlugin:
    """The plugin for a Hugging Face architecture name (e.g. ``"LlamaForCausalLM"``).

    Raises :class:`~tttv2.core.errors.UnknownNameError` listing the installed
    architectures, or :class:`ModelLoadError` when the plugin fails to import."""
    if architecture in _registered:
        return _registered[architecture]
    if architecture in _loaded:
        return _loaded[architecture]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == architecture:
            try:
                plugin = ep.load()
            except Exception as exc:  # report a broken plugin, do not crash the caller
                raise ModelLoadError(
                    f"model plugin {architecture!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}"
                ) from exc
            _check_plugin(architecture, plugin, f"entry point {ep.value!r}")
            _loaded[architecture] = plugin
            return plugin
    raise UnknownNameError("model architecture", architecture, list_model_plugins())


def read_hf_config(checkpoint_dir: str | Path) -> dict[str, Any]:
    """``config.json`` of a Hugging Face checkpoint folder, as a dict."""
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        raise ModelLoadError(f"checkpoint folder {str(folder)!r} does not exist or is not a folder")
    path = folder / "config.json"
    if not path.is_file():
        raise ModelLoadError(
            f"{folder} has no config.json (expected a Hugging Face checkpoint folder)"
        )
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path}: expected a JSON object")
    return config


def architecture_of(hf_config: dict[str, Any], source: str = "config.json") -> str:
    """The first entry of ``architectures`` in a Hugging Face config."""
    archs = hf_config.get("architectures")
    if not isinstance(archs, list) or not archs or not isinstance(archs[0], str):
        raise ModelLoadError(
            f'{source} names no architecture (expected e.g. "architectures": ["LlamaForCausalLM"])'
        )
    return archs[0]


def load_model(
    checkpoint_dir: str | Path,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    progress: ProgressCallback | None = None,
) -> LoadedModel:
    """Read ``config.json``, find the plugin for its architecture and let it load."""
    config = read_hf_config(checkpoint_dir)
    plugin = find_model_plugin(architecture_of(config, f"{Path(checkpoint_dir) / 'config.json'}"))
    return plugin.load(checkpoint_dir, dtype=dtype, device=device, progress=progress)


def _check_plugin(architecture: str, plugin: object, where: str) -> None:
    if not callable(getattr(plugin, "load", None)):
        raise ModelLoadError(
            f"model plugin {architecture!r} ({where}) has no load(checkpoint_dir, *, dtype, device, progress) callable"
        )
