"""Where TTTv2 keeps what it builds once and reuses: ``$TTTV2_CACHE_DIR``, default
``~/.cache/tttv2`` (compiled kernels under ``native/``, the CLI's default checkpoint)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "TTTV2_CACHE_DIR"


def cache_dir() -> Path:
    """The cache root (not created here)."""
    root = os.environ.get(CACHE_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "tttv2"
