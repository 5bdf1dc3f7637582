"""One call from a Hugging Face checkpoint folder to a loaded model: what a model
plugin's ``load`` does, given the model's own three pieces (config -> spec, tensor rename
rules, model class).

Order, so that bad input costs nothing: read ``config.json`` and the safetensors headers;
refuse a layer count (``num_hidden_layers``) above the number of stored tensors; map the
config to a spec (one-line :class:`~tttv2.blocks.hf_config.HFConfigError` for malformed
fields); refuse non-floating-point tensors by name and a config whose parameter count
exceeds the stored elements or the device's free memory (before any allocation); build the
model directly in ``dtype`` without random initialisation; check every name and shape
(missing / unexpected / mis-shaped reported together); copy tensor by tensor, checking
each for NaN/inf; fuse q/k/v and gate/up; pack the weights; read ``tokenizer.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from tttv2.blocks.hf_config import HFConfig, HFConfigError
from tttv2.blocks.weights.checkpoint import SafetensorsCheckpoint
from tttv2.blocks.weights.checks import check_layer_count, check_sizes, check_tensor_dtypes
from tttv2.blocks.weights.construction import default_dtype, no_init_weights
from tttv2.blocks.weights.errors import CheckpointError
from tttv2.blocks.weights.fusion import fuse_projections
from tttv2.blocks.weights.loading import ProgressCallback, load_weights
from tttv2.blocks.weights.packing import pack_weights
from tttv2.blocks.weights.renaming import RenameRules
from tttv2.blocks.weights.sharded_loading import load_sharded_stack
from tttv2.core.errors import TTTv2Error
from tttv2.core.model_plugins import LoadedModel, read_hf_config
from tttv2.core.specs import ModelSpec

SpecFromConfig = Callable[[Mapping[str, Any]], ModelSpec]


def spec_from_config(
    config: Mapping[str, Any], model_spec: SpecFromConfig, owner: str = "config.json"
) -> ModelSpec:
    """``model_spec(config)``; any error a mapping did not mean to raise (a ``TypeError``
    from arithmetic on a string, ...) becomes one :class:`HFConfigError` line, so a
    malformed config is always a :class:`~tttv2.core.errors.SpecError`."""
    if not isinstance(config, Mapping):
        raise HFConfigError(owner, "<root>", type(config).__name__, "a JSON object")
    try:
        return model_spec(config)
    except TTTv2Error:
        raise
    except (TypeError, KeyError, IndexError, ValueError, ArithmeticError, AttributeError) as exc:
        raise HFConfigError(
            owner,
            "<config>",
            f"<{type(exc).__name__}: {exc}>",
            "a config the model's mapping can read",
        ) from None


def load_hf_checkpoint(
    checkpoint_dir: str | Path,
    *,
    model_spec: SpecFromConfig,
    rename_rules: Callable[[ModelSpec], RenameRules],
    model_class: Callable[..., torch.nn.Module] | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    progress: ProgressCallback | None = None,
    execution_strategy: Any = None,
    allow_nonfinite_weights: bool = False,
    config_name: str = "config.json",
    mesh: Any = None,
) -> LoadedModel:
    """Load a Hugging Face safetensors checkpoint folder into ``model_class(spec, device,
    execution_strategy)`` (default :class:`~tttv2.blocks.TransformerStack`).

    ``model_spec(config) -> ModelSpec`` and ``rename_rules(spec) -> RenameRules`` are the
    model's own; ``config_name`` labels config errors (e.g. ``"LlamaConfig"``).
    ``allow_nonfinite_weights``: load tensors holding NaN/inf instead of refusing them.
    ``mesh`` (a ``tttv2.hw.mesh.DeviceMesh`` of more than one rank): build and load this
    rank's :class:`~tttv2.blocks.parallel.ShardedTransformerStack` instead, reading only its
    slices (:mod:`~tttv2.blocks.weights.sharded_loading`); head counts the world size does
    not divide are refused before any weight is read. A mesh of one loads the whole model.
    Returns the :class:`~tttv2.core.model_plugins.LoadedModel` a ``tttv2.models`` plugin
    returns (eos/bos ids and ``max_context`` from the config and the spec)."""
    folder = Path(checkpoint_dir)
    config = read_hf_config(folder)
    with SafetensorsCheckpoint(folder) as checkpoint:  # headers read and checked
        check_layer_count(config, checkpoint, folder / "config.json")
        spec = spec_from_config(config, model_spec, config_name)
        hf = HFConfig(config, config_name)
        eos, bos = hf.token_ids("eos_token_id"), hf.token_id("bos_token_id")
        rules = rename_rules(spec)
        check_tensor_dtypes(checkpoint, lambda name: rules.placements(name) is not None)
        if mesh is not None and mesh.world_size > 1:
            if model_class is not None:
                raise CheckpointError(
                    f"tensor parallel: {getattr(model_class, '__name__', model_class)} cannot be "
                    "sharded (only the library's TransformerStack has a sharded form)"
                )
            sharded = load_sharded_stack(
                checkpoint.files, spec, rules, mesh,
                dtype=dtype, device=device, execution_strategy=execution_strategy,
            )  # fmt: skip
            return _loaded(sharded, spec, config, folder, eos, bos)
        check_sizes(spec, checkpoint, dtype, device, source=folder / "config.json")
        if model_class is None:
            from tttv2.blocks.patterns import TransformerStack

            model_class = TransformerStack
        with default_dtype(dtype), no_init_weights():  # every parameter is loaded next
            model = model_class(spec, device, execution_strategy)
        # RenameRules is read through its placements() (see _as_placer), not as a Rename
        load_weights(
            model, checkpoint, rules, dtype=dtype, progress=progress,  # type: ignore[arg-type]
            check_finite=not allow_nonfinite_weights,
        )  # fmt: skip
    fuse_projections(model)
    pack_weights(model)  # one buffer on huge pages, in the order decode reads it
    model.eval()
    return _loaded(model, spec, config, folder, eos, bos)


def _loaded(
    model: torch.nn.Module,
    spec: ModelSpec,
    config: Mapping[str, Any],
    folder: Path,
    eos: Any,
    bos: Any,
) -> LoadedModel:
    return LoadedModel(
        model=model,
        spec=spec,
        hf_config=dict(config),
        tokenizer=load_tokenizer(folder),
        eos_token_ids=eos,
        bos_token_id=bos,
        max_context=spec.max_seq_len,
    )


def load_tokenizer(folder: str | Path) -> Any:
    """``tokenizers.Tokenizer`` from ``tokenizer.json``; ``None`` when there is none."""
    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        return None
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises its own exception types
        raise CheckpointError(f"{path}: not a valid tokenizer.json ({exc})") from None
