"""A Hugging Face checkpoint folder's safetensors, read lazily one tensor at a time.

Only safetensors are read (never pickles). A folder holds either one file, or shards named
by ``model.safetensors.index.json`` (``{"weight_map": {tensor: file}}``), or, without an
index, any number of ``*.safetensors`` files whose tensor names must not collide.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import torch

from tttv2.blocks.weights.errors import CheckpointError, CorruptCheckpointError
from tttv2.blocks.weights.safetensors_header import TensorInfo, read_header

INDEX_FILE = "model.safetensors.index.json"


class SafetensorsCheckpoint:
    """Tensor names, shapes and sizes from the headers; tensor data on demand.

    Use as a context manager (or call :meth:`close`) to release the open files::

        with SafetensorsCheckpoint(folder) as ckpt:
            for name in ckpt.names:
                t = ckpt.get(name)
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise CheckpointError(
                f"checkpoint folder {str(self.folder)!r} does not exist or is not a folder"
            )
        self.tensors: dict[str, TensorInfo] = self._discover()
        self._files = ExitStack()
        self._handles: dict[Path, Any] = {}

    @property
    def names(self) -> list[str]:
        return list(self.tensors)

    @property
    def files(self) -> list[Path]:
        return sorted({t.file for t in self.tensors.values()})

    @property
    def total_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    def __contains__(self, name: object) -> bool:
        return name in self.tensors

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._info(name).shape

    def get(self, name: str) -> torch.Tensor:
        """Read one tensor (a fresh CPU tensor; nothing else is read or kept)."""
        info = self._info(name)
        from safetensors import SafetensorError, safe_open

        try:
            handle = self._handles.get(info.file)
            if handle is None:
                handle = self._files.enter_context(
                    safe_open(str(info.file), framework="pt", device="cpu")
                )
                self._handles[info.file] = handle
            return handle.get_tensor(name)
        except (SafetensorError, OSError) as exc:
            raise CorruptCheckpointError(
                f"{info.file}: cannot read tensor {name!r}: {exc}"
            ) from None

    def close(self) -> None:
        self._handles.clear()
        self._files.close()

    def __enter__(self) -> SafetensorsCheckpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _info(self, name: str) -> TensorInfo:
        try:
            return self.tensors[name]
        except KeyError:
            raise KeyError(f"{self.folder} has no tensor {name!r}") from None

    def _discover(self) -> dict[str, TensorInfo]:
        index = self.folder / INDEX_FILE
        if index.is_file():
            return self._from_index(index)
        files = sorted(self.folder.glob("*.safetensors"))
        if not files:
            others = sorted(
                p.name
                for p in self.folder.iterdir()
                if p.suffix in {".bin", ".pt", ".pth", ".ckpt"}
            )
            hint = (
                f" (found {', '.join(others)}: only safetensors are loaded, never pickles)"
                if others
                else ""
            )
            raise CheckpointError(f"no *.safetensors files in {self.folder}{hint}")
        tensors: dict[str, TensorInfo] = {}
        for path in files:
            for name, info in read_header(path).items():
                if name in tensors:
                    raise CheckpointError(
                        f"tensor {name!r} is in both {tensors[name].file.name} and {path.name} "
                        f"and {self.folder} has no {INDEX_FILE} to choose"
                    )
                tensors[name] = info
        return tensors

    def _from_index(self, index: Path) -> dict[str, TensorInfo]:
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
            if not isinstance(weight_map, dict):
                raise TypeError("weight_map is not an object")
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            raise CorruptCheckpointError(
                f"{index}: not a valid safetensors index ({exc!r})"
            ) from None
        for name, file in weight_map.items():
            _check_shard_name(index, name, file)
        headers: dict[str, dict[str, TensorInfo]] = {}
        for file in sorted(set(weight_map.values())):
            path = self.folder / file
            if not _is_file(path):
                raise CheckpointError(
                    f"{index.name} names shard {file!r}, which is not in {self.folder}"
                )
            headers[file] = read_header(path)
        absent = [name for name, file in weight_map.items() if name not in headers[file]]
        if absent:
            raise CorruptCheckpointError(
                f"{index.name} places {len(absent)} tensor(s) in shards that do not hold them: "
                + ", ".join(f"{n} ({weight_map[n]})" for n in absent)
            )
        return {name: headers[file][name] for name, file in weight_map.items()}


def _check_shard_name(index: Path, tensor: str, file: object) -> None:
    """A weight_map value must name a file inside the checkpoint folder: a relative path
    with no ``..`` part (symlinks inside the folder, as in the Hugging Face cache, are
    followed as usual)."""
    where = f"{index.name}: weight_map[{tensor!r}]={file!r} is invalid"
    if not isinstance(file, str) or not file:
        raise CorruptCheckpointError(f"{where}: expected a shard file name (a string)")
    parts = PurePosixPath(file.replace("\\", "/"))
    if parts.is_absolute() or PureWindowsPath(file).drive or ".." in parts.parts:
        raise CorruptCheckpointError(
            f"{where}: expected a shard file inside the checkpoint folder "
            "(a relative name without '..')"
        )


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False also for names the OS refuses (too long, ...)."""
    try:
        return path.is_file()
    except OSError:
        return False
