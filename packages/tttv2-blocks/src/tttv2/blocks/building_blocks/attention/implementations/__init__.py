"""Attention implementations, one per execution mode, registered with tttv2.core."""

from tttv2.blocks.building_blocks.attention.implementations.continuous_batch import (
    ContinuousBatchAttention,
)
from tttv2.blocks.building_blocks.attention.implementations.decode import DecodeAttention
from tttv2.blocks.building_blocks.attention.implementations.long_context import LongContextAttention
from tttv2.blocks.building_blocks.attention.implementations.prefill import PrefillAttention
from tttv2.blocks.building_blocks.attention.implementations.speculative import SpeculativeAttention
from tttv2.blocks.building_blocks.attention.implementations.unified import UnifiedAttention
from tttv2.core import ExecutionMode, register_implementation
from tttv2.core.specs import AttentionSpec

IMPLEMENTATIONS = {
    ExecutionMode.PREFILL: PrefillAttention,
    ExecutionMode.DECODE: DecodeAttention,
    ExecutionMode.UNIFIED: UnifiedAttention,
    ExecutionMode.LONG_CONTEXT: LongContextAttention,
    ExecutionMode.SPECULATIVE: SpeculativeAttention,
    ExecutionMode.CONTINUOUS_BATCH: ContinuousBatchAttention,
}

for _mode, _factory in IMPLEMENTATIONS.items():
    # each class takes an AttentionSpec; the registry types factories by ModuleSpec
    register_implementation(AttentionSpec, _mode, _factory)  # type: ignore[arg-type]

__all__ = [
    "ContinuousBatchAttention",
    "DecodeAttention",
    "IMPLEMENTATIONS",
    "LongContextAttention",
    "PrefillAttention",
    "SpeculativeAttention",
    "UnifiedAttention",
]
