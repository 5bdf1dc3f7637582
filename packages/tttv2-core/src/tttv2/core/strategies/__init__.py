"""Built-in execution strategies, registered by name in :class:`StrategyRegistry`."""

from tttv2.core.registry import StrategyRegistry
from tttv2.core.strategies.continuous_batching import ContinuousBatchingStrategy
from tttv2.core.strategies.dynamic import DEFAULT_RULES, DynamicStrategy, Rule
from tttv2.core.strategies.multi_mode import MultiModeStrategy
from tttv2.core.strategies.prefill_decode import PrefillDecodeStrategy
from tttv2.core.strategies.unified import UnifiedStrategy

for _cls in (
    PrefillDecodeStrategy,
    UnifiedStrategy,
    MultiModeStrategy,
    ContinuousBatchingStrategy,
    DynamicStrategy,
):
    StrategyRegistry.register(_cls.name, _cls)

DEFAULT_STRATEGY = PrefillDecodeStrategy.name

__all__ = [
    "DEFAULT_RULES",
    "DEFAULT_STRATEGY",
    "ContinuousBatchingStrategy",
    "DynamicStrategy",
    "MultiModeStrategy",
    "PrefillDecodeStrategy",
    "Rule",
    "UnifiedStrategy",
]
