"""A checkpoint folder loaded into ``transformers`` as the reference, safely.

The reference must see the same weights as our loader and must never run code or data
from the folder:

* remote code stays off: a ``config.json`` with ``auto_map`` (the checkpoint's own Python
  classes), or naming a ``model_type`` or architecture ``transformers`` does not have, is
  refused with :class:`RemoteCodeRefusedError` (one line) instead of being run, and
  ``trust_remote_code=False`` is passed, so ``transformers`` never asks on stdin either;
* nothing is unpickled: ``transformers`` loads from a temporary folder holding links to
  ``config.json`` and exactly the safetensors files our loader reads
  (:class:`tttv2.blocks.weights.SafetensorsCheckpoint`), under the names it expects
  (``model.safetensors``, or ``model.safetensors.index.json`` and the shards), with
  ``use_safetensors=True``. A ``pytorch_model.bin`` (or any other file) beside them is not
  in that folder, so it cannot be read, whatever ``transformers`` would prefer.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from tttv2.blocks.weights import SafetensorsCheckpoint
from tttv2.blocks.weights.checkpoint import INDEX_FILE
from tttv2.blocks.weights.errors import CheckpointError

SINGLE_FILE = "model.safetensors"


class RemoteCodeRefusedError(CheckpointError):
    """The checkpoint's config needs code that ``transformers`` would load from the folder
    (or the Hub); the reference runs only built-in ``transformers`` architectures."""


def read_config(folder: Path) -> dict[str, Any]:
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path}: not a readable JSON config ({exc})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    return config


def check_no_remote_code(folder: Path, tf: Any) -> None:
    """Raise :class:`RemoteCodeRefusedError` unless ``transformers`` (the module ``tf``)
    builds the folder's model from its own classes."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    path = Path(folder) / "config.json"
    config = read_config(folder)
    why = "the transformers reference runs with remote code disabled (trust_remote_code=False)"
    if "auto_map" in config:
        raise RemoteCodeRefusedError(
            f"{path}: auto_map={config['auto_map']!r} asks for the checkpoint's own Python code; {why}"
        )
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        raise RemoteCodeRefusedError(
            f"{path}: model_type={model_type!r} is not an architecture transformers "
            f"{tf.__version__} has; {why}"
        )
    architectures = config.get("architectures") or []
    if not isinstance(architectures, list):
        raise RemoteCodeRefusedError(
            f"{path}: architectures={architectures!r} is not a list of class names"
        )
    for name in architectures:
        if not isinstance(name, str) or not name.isidentifier() or not hasattr(tf, name):
            raise RemoteCodeRefusedError(
                f"{path}: architectures names {name!r}, which transformers {tf.__version__} does not have; {why}"
            )


def reference_files(folder: Path) -> dict[str, Path]:
    """Name in the reference folder -> the file of ``folder`` it links to: ``config.json``
    and the safetensors files :class:`SafetensorsCheckpoint` reads (with their index, or a
    single file as ``model.safetensors``; several files without an index keep their names
    and :func:`reference_folder` writes the index)."""
    folder = Path(folder)
    with SafetensorsCheckpoint(folder) as checkpoint:
        files = checkpoint.files
    links = {"config.json": folder / "config.json"}
    if (folder / INDEX_FILE).is_file():
        links[INDEX_FILE] = folder / INDEX_FILE
        links.update({str(f.relative_to(folder)): f for f in files})
    elif len(files) == 1:
        links[SINGLE_FILE] = files[0]
    else:
        links.update({f.name: f for f in files})
    return links


@contextmanager
def reference_folder(folder: Path) -> Iterator[Path]:
    """A temporary folder of links to :func:`reference_files` (an index is written when
    several files have none), removed on exit."""
    folder = Path(folder)
    links = reference_files(folder)
    with tempfile.TemporaryDirectory(prefix="tttv2-reference-") as tmp:
        root = Path(tmp)
        for name, target in links.items():
            _link(target, root / name)
        if INDEX_FILE not in links and SINGLE_FILE not in links:
            with SafetensorsCheckpoint(folder) as checkpoint:
                weight_map = {n: checkpoint.tensors[n].file.name for n in checkpoint.names}
            (root / INDEX_FILE).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
        yield root


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(target.resolve(), link)
    except OSError:  # no symlinks here (some Windows setups): a copy reads the same bytes
        shutil.copyfile(target, link)


def load_reference_model(
    folder: Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> Any:
    """``transformers``' model for ``folder`` in ``dtype`` on ``device``, eval mode: built-in
    classes only, safetensors only, from exactly the files our loader reads (see the
    module docstring); :class:`RemoteCodeRefusedError` when the config needs remote code."""
    from tttv2.testing.hf.env import transformers

    tf = transformers()
    check_no_remote_code(folder, tf)
    with reference_folder(folder) as root:
        model = tf.AutoModelForCausalLM.from_pretrained(
            root, dtype=dtype, trust_remote_code=False, use_safetensors=True, local_files_only=True
        )
    return model.to(device).eval()
