"""tttv2.core: specs (what), execution modes and strategies (how), the module base, and
the bookkeeping shared by blocks and the generation runtime (which lives in tttv2-serve,
``tttv2.serve.runtime``)."""

from importlib.metadata import PackageNotFoundError, version

from tttv2.core.batch import BatchMetadata
from tttv2.core.compat import LegacyModeCall
from tttv2.core.config import ModuleConfig, create_module
from tttv2.core.context import RuntimeContext
from tttv2.core.errors import (
    InputError,
    KVCacheExhaustedError,
    ModeNotSupportedError,
    SpecError,
    StrategyError,
    TTTv2Error,
    UnknownNameError,
)
from tttv2.core.implementations import (
    Implementation,
    implementations_for,
    implements,
    register_implementation,
    registered_modes,
)
from tttv2.core.kv_blocks import KVBlockManager
from tttv2.core.modes import ExecutionMode
from tttv2.core.module import BaseModule
from tttv2.core.module_classes import module_class_for, register_module_class
from tttv2.core.registry import StrategyRegistry
from tttv2.core.specs import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    FeedForwardSpec,
    KVCacheSpec,
    LMHeadSpec,
    ModelSpec,
    ModuleSpec,
    MoESpec,
    NormSpec,
    RopeSpec,
)
from tttv2.core.strategies import (
    ContinuousBatchingStrategy,
    DynamicStrategy,
    MultiModeStrategy,
    PrefillDecodeStrategy,
    UnifiedStrategy,
)
from tttv2.core.strategy import ExecutionStrategy

try:
    __version__ = version("tttv2-core")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "AttentionSpec",
    "BaseModule",
    "BatchMetadata",
    "ContinuousBatchingStrategy",
    "DecoderLayerSpec",
    "DynamicStrategy",
    "EmbeddingSpec",
    "ExecutionMode",
    "ExecutionStrategy",
    "FeedForwardSpec",
    "Implementation",
    "InputError",
    "KVBlockManager",
    "KVCacheExhaustedError",
    "KVCacheSpec",
    "LMHeadSpec",
    "LegacyModeCall",
    "ModeNotSupportedError",
    "ModelSpec",
    "MoESpec",
    "ModuleConfig",
    "ModuleSpec",
    "MultiModeStrategy",
    "NormSpec",
    "PrefillDecodeStrategy",
    "RopeSpec",
    "RuntimeContext",
    "SpecError",
    "StrategyError",
    "StrategyRegistry",
    "TTTv2Error",
    "UnifiedStrategy",
    "UnknownNameError",
    "__version__",
    "create_module",
    "implementations_for",
    "implements",
    "register_implementation",
    "register_module_class",
    "module_class_for",
    "registered_modes",
]
