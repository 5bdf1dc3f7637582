"""The ``tttv2.models`` plugin for ``LlamaForCausalLM`` checkpoints.

``load(folder, dtype=..., device=...)`` reads ``config.json``, checks the safetensors
headers, builds the model directly in ``dtype``, copies the tensors one at a time (every
missing, unexpected or mis-shaped one is reported by name before anything is copied),
fuses q/k/v and gate/up, packs the weights into one huge-page buffer in order of use,
and reads ``tokenizer.json`` with ``tokenizers``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tttv2.blocks.weights import (
    CheckpointError,
    SafetensorsCheckpoint,
    default_dtype,
    fuse_projections,
    load_weights,
    no_init_weights,
    pack_weights,
)
from tttv2.core.model_plugins import LoadedModel, ProgressCallback, read_hf_config
from tttv2_llama3.config import model_spec
from tttv2_llama3.model import LlamaForCausalLM
from tttv2_llama3.weights import rename_rules

ARCHITECTURE = "LlamaForCausalLM"


def load(
    checkpoint_dir: str | Path,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    progress: ProgressCallback | None = None,
    execution_strategy: Any = None,
) -> LoadedModel:
    folder = Path(checkpoint_dir)
    config = read_hf_config(folder)
    try:
        spec = model_spec(config)
    except (TypeError, KeyError) as exc:  # e.g. a number stored as a string
        raise CheckpointError(
            f"{folder / 'config.json'}: not a valid Llama config ({exc!r})"
        ) from None
    with SafetensorsCheckpoint(folder) as checkpoint:  # headers checked before building
        with default_dtype(dtype), no_init_weights():  # every parameter is loaded next
            model = LlamaForCausalLM(spec, device, execution_strategy)
        load_weights(model, checkpoint, rename_rules(model.spec), dtype=dtype, progress=progress)
    fuse_projections(model)
    pack_weights(model)  # one buffer on huge pages, in the order decode reads it
    model.eval()
    return LoadedModel(
        model=model,
        spec=model.spec,
        hf_config=config,
        tokenizer=load_tokenizer(folder),
        eos_token_ids=token_ids(config.get("eos_token_id")),
        bos_token_id=config.get("bos_token_id"),
        max_context=model.spec.max_seq_len,
    )


def token_ids(value: Any) -> tuple[int, ...]:
    """``eos_token_id`` may be an int, a list of ints or null."""
    if value is None:
        return ()
    return (value,) if isinstance(value, int) else tuple(int(v) for v in value)


def load_tokenizer(folder: Path) -> Any:
    """``tokenizers.Tokenizer`` from ``tokenizer.json``; ``None`` when there is none."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        return None
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises its own exception types
        raise CheckpointError(f"{path}: not a valid tokenizer.json ({exc})") from None
