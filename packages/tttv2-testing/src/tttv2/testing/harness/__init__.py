"""Component test harness: correctness against references in every execution mode of one
strategy or of every registered strategy, relative speed and memory. (The public-API
compatibility check is a release tool: ``tools/api_snapshot.py`` in the repository.)"""

from tttv2.testing.harness.components import (
    Component,
    ComponentReport,
    ModeResult,
    check_component,
    check_component_property,
    get_component,
    modes_of,
    register_component,
    registered_components,
    unregister_component,
)
from tttv2.testing.harness.memory import (
    GrowthReport,
    MemoryReport,
    TensorAllocationTracker,
    check_no_memory_growth,
    peak_memory,
)
from tttv2.testing.harness.speed import SpeedReport, compare_speed
from tttv2.testing.harness.weights import randomize_parameters

__all__ = [
    "Component",
    "ComponentReport",
    "GrowthReport",
    "MemoryReport",
    "ModeResult",
    "SpeedReport",
    "TensorAllocationTracker",
    "check_component",
    "check_component_property",
    "check_no_memory_growth",
    "compare_speed",
    "get_component",
    "modes_of",
    "peak_memory",
    "randomize_parameters",
    "register_component",
    "registered_components",
    "unregister_component",
]
