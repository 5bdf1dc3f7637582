"""Where a model project's tests keep their tiny checkpoints: one folder per session,
shared by pytest-xdist workers (builds are atomic), and a builder bound to it."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def shared_cache_dir(tmp_path_factory: Any, name: str = "checkpoints") -> Path:
    """``tmp_path_factory``'s base folder, the same for every xdist worker."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    return root / name


def checkpoint_builder(
    cache_dir: Path, architecture: str, base: Mapping[str, Any] | None = None
) -> Callable[..., Any]:
    """``build(overrides=None, **build_tiny_checkpoint kwargs) -> TinyCheckpoint`` of
    ``architecture`` with ``{**base, **overrides}`` as its config."""
    from tttv2.testing.hf import build_tiny_checkpoint

    def build(overrides: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        return build_tiny_checkpoint(
            cache_dir, architecture, {**(base or {}), **(overrides or {})}, **kwargs
        )

    return build
