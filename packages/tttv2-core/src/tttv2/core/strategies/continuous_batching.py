"""One forward pass over a ragged batch mixing sequences in prefill and in decode."""

from __future__ import annotations

from tttv2.core.modes import ExecutionMode
from tttv2.core.strategy import ExecutionStrategy


class ContinuousBatchingStrategy(ExecutionStrategy):
    """Prefill and decode as usual plus CONTINUOUS_BATCH: each sequence in the batch
    brings any number of new tokens and attends to its own cached context."""

    name = "continuous_batching"
    accepted_options = frozenset()  # only ``variants``

    def get_execution_modes(self) -> list[ExecutionMode]:
        return [ExecutionMode.PREFILL, ExecutionMode.DECODE, ExecutionMode.CONTINUOUS_BATCH]
