"""Parameters per operation and execution mode: typed results, default tables, overrides."""

from tttv2.hw.params.overrides import ENV_VAR, ParamsOverrideError, load_overrides
from tttv2.hw.params.resolve import resolve_params
from tttv2.hw.params.tables import DEFAULT_RULES
from tttv2.hw.params.types import (
    PARAMS_CLASSES,
    AttentionParams,
    FFNParams,
    KVCacheParams,
    LMHeadParams,
    ModelParams,
    MoEParams,
    NormParams,
    OpParams,
    RopeParams,
)

OPS = tuple(PARAMS_CLASSES)

__all__ = [
    "DEFAULT_RULES",
    "ENV_VAR",
    "OPS",
    "PARAMS_CLASSES",
    "AttentionParams",
    "FFNParams",
    "KVCacheParams",
    "LMHeadParams",
    "ModelParams",
    "MoEParams",
    "NormParams",
    "OpParams",
    "ParamsOverrideError",
    "RopeParams",
    "load_overrides",
    "resolve_params",
]
