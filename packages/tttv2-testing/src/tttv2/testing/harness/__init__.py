"""Component test harness: correctness against references in every execution mode of one
strategy or of every registered strategy, relative speed, memory, and public-API
compatibility."""

from tttv2.testing.harness.api import (
    BreakingChange,
    PackageSource,
    api_snapshot,
    find_breaking_changes,
    resolve_package,
)
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
    "BreakingChange",
    "Component",
    "ComponentReport",
    "GrowthReport",
    "MemoryReport",
    "ModeResult",
    "PackageSource",
    "SpeedReport",
    "TensorAllocationTracker",
    "api_snapshot",
    "check_component",
    "check_component_property",
    "check_no_memory_growth",
    "compare_speed",
    "find_breaking_changes",
    "get_component",
    "modes_of",
    "peak_memory",
    "randomize_parameters",
    "register_component",
    "registered_components",
    "resolve_package",
    "unregister_component",
]
