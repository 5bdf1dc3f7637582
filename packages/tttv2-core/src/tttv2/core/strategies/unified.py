"""One implementation for every mode: simpler, less specialised."""

from __future__ import annotations

from tttv2.core.modes import ExecutionMode
from tttv2.core.strategy import ExecutionStrategy


class UnifiedStrategy(ExecutionStrategy):
    """Runs prefill, decode and unified requests through the single UNIFIED implementation."""

    name = "unified"
    accepted_options = frozenset()  # only ``variants``

    def get_execution_modes(self) -> list[ExecutionMode]:
        return [ExecutionMode.UNIFIED]

    def resolve_mode(self, mode: ExecutionMode) -> ExecutionMode:
        if mode in (ExecutionMode.PREFILL, ExecutionMode.DECODE):
            return ExecutionMode.UNIFIED
        return mode

    def supports(self, mode: ExecutionMode | str) -> bool:
        return self.resolve_mode(ExecutionMode(mode)) is ExecutionMode.UNIFIED
