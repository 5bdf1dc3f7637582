"""Prefill/decode plus long-context (chunked) prefill and speculative verification."""

from __future__ import annotations

from typing import Any

from tttv2.core.errors import SpecError
from tttv2.core.implementations import Implementation
from tttv2.core.modes import ExecutionMode
from tttv2.core.specs.base import ModuleSpec
from tttv2.core.strategy import ExecutionStrategy

_PREFILL_LIKE = frozenset({ExecutionMode.LONG_CONTEXT, ExecutionMode.SPECULATIVE})


class MultiModeStrategy(ExecutionStrategy):
    """Adds LONG_CONTEXT (prompt processed in chunks of ``chunk_size`` tokens attending to
    the cache filled so far) and SPECULATIVE (verify k draft tokens in one pass).

    ``chunk_size=None`` (the default) leaves the chunk size to the implementation, which
    uses the hardware's tuned value (tttv2-hw's ``prefill_chunk_size``); a positive integer
    overrides it.

    Modules whose math does not change with these modes (only attention does) register
    no implementation for them and fall back to their prefill implementation (the same
    object: nothing more is built or stored)."""

    name = "multi_mode"
    accepted_options = frozenset({"chunk_size"})

    def __init__(self, chunk_size: int | None = None, **options: object) -> None:
        bad = isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0
        if chunk_size is not None and bad:
            expected = "a positive integer, or None for the hardware's tuned value"
            raise SpecError(type(self).__name__, "chunk_size", chunk_size, expected)
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

    def specialize_module(
        self, module_spec: ModuleSpec, device: Any
    ) -> dict[ExecutionMode, Implementation]:
        impls = super().specialize_module(module_spec, device)
        for mode in _PREFILL_LIKE:
            impls.setdefault(mode, impls[ExecutionMode.PREFILL])
        return impls
