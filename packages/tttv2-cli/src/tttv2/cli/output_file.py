"""Checking an output file's path before any work is done, so that a command never loads a
model and computes for minutes only to fail writing its result."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tttv2.cli.errors import UsageError


def check_output_file(path: Path, option: str) -> None:
    """Raise :class:`UsageError` naming ``option`` when ``path`` cannot be written: it is a
    folder, its folder does not exist, or no file can be created in its folder (tried with
    a temporary file, removed at once: permissions alone do not tell, e.g. for root)."""
    if path.is_dir():
        raise UsageError(
            f"{option} {path}: is a folder; name a file in it, e.g. {path / 'logits.safetensors'}"
        )
    folder = path.parent
    if not folder.resolve().is_dir():
        raise UsageError(f"{option} {path}: folder {folder} does not exist")
    try:
        fd, probe = tempfile.mkstemp(dir=folder.resolve(), prefix=f".{path.name}.", suffix=".probe")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(
            f"{option} {path}: cannot create a file in folder {folder} ({reason})"
        ) from None
    os.close(fd)
    os.unlink(probe)
