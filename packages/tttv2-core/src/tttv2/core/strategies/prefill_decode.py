"""The default strategy: separate prefill and decode implementations."""

from __future__ import annotations

from tttv2.core.modes import ExecutionMode
from tttv2.core.strategy import ExecutionStrategy


class PrefillDecodeStrategy(ExecutionStrategy):
    """Prefill (many tokens, causal, fills the cache) and decode (one token per sequence,
    reads the paged cache) as separately optimised implementations."""

    name = "prefill_decode"
    accepted_options = frozenset()  # only ``variants``

    def get_execution_modes(self) -> list[ExecutionMode]:
        return [ExecutionMode.PREFILL, ExecutionMode.DECODE]
