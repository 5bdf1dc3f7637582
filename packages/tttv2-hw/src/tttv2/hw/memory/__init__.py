"""Memory planning: parameter bytes from a spec, and how much KV cache fits after them."""

from tttv2.hw.memory.param_count import ModelParamCount, count_params, kv_bytes_per_token
from tttv2.hw.memory.planner import MemoryPlan, MemoryPlanError, plan_memory

__all__ = [
    "MemoryPlan",
    "MemoryPlanError",
    "ModelParamCount",
    "count_params",
    "kv_bytes_per_token",
    "plan_memory",
]
