"""Prefill/decode plus long-context (chunked) prefill and speculative verification."""

from __future__ import annotations

from typing import Any

from tttv2.core.implementations import Implementation
from tttv2.core.modes import ExecutionMode
from tttv2.core.specs.base import ModuleSpec
from tttv2.core.strategy import ExecutionStrategy

_PREFILL_LIKE = frozenset({ExecutionMode.LONG_CONTEXT, ExecutionMode.SPECULATIVE})


class MultiModeStrategy(ExecutionStrategy):
    """Adds LONG_CONTEXT (prompt processed in chunks of ``chunk_size`` tokens attending to
    the cache filled so far) and SPECULATIVE (verify k draft tokens in one pass).

    Modules whose math does not change with these modes (only attention does) register
    no implementation for them and fall back to their prefill implementation (the same
    object: nothing more is built or stored)."""

    name = "multi_mode"

    def __init__(self, chunk_size: int = 1024, **options: object) -> None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0:
            raise ValueError(f"chunk_size={chunk_size!r} is invalid: expected a positive integer")
        super().__init__(chunk_size=chunk_size, **options)  # type: ignore[arg-type]
        self.chunk_size = chunk_size

    def get_execution_modes(self) -> list[ExecutionMode]:
        return [
            ExecutionMode.PREFILL,
            ExecutionMode.DECODE,
            ExecutionMode.LONG_CONTEXT,
            ExecutionMode.SPECULATIVE,
        ]

    def optional_modes(self) -> frozenset[ExecutionMode]:
        return _PREFILL_LIKE

    def specialize_module(self, module_spec: ModuleSpec, device: Any) -> dict[ExecutionMode, Implementation]:
        impls = super().specialize_module(module_spec, device)
        for mode in _PREFILL_LIKE:
            impls.setdefault(mode, impls[ExecutionMode.PREFILL])
        return impls
