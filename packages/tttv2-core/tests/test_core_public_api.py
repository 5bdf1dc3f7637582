"""The public names of tttv2.core (the contract other packages build on)."""

from __future__ import annotations

import tttv2.core as core

REQUIRED = {
    # issue 3: modes, strategies, registry, configuration, context, specs
    "ExecutionMode",
    "ExecutionStrategy",
    "StrategyRegistry",
    "ModuleConfig",
    "create_module",
    "RuntimeContext",
    "AttentionSpec",
    "FeedForwardSpec",
    "MoESpec",
    "NormSpec",
    "EmbeddingSpec",
    "RopeSpec",
    "KVCacheSpec",
    "LMHeadSpec",
    "DecoderLayerSpec",
    "ModelSpec",
    "ModuleSpec",
    # named in docs/ARCHITECTURE.md
    "BaseModule",
    "BatchMetadata",
    "KVBlockManager",
    "LegacyModeCall",
    "register_implementation",
    "implements",
    "register_module_class",
    "PrefillDecodeStrategy",
    "UnifiedStrategy",
    "MultiModeStrategy",
    "ContinuousBatchingStrategy",
    "DynamicStrategy",
    "SpecError",
    "KVCacheExhaustedError",
    "ModeNotSupportedError",
    "StrategyError",
    "UnknownNameError",
    "TTTv2Error",
}


def test_required_names_are_exported() -> None:
    assert REQUIRED <= set(core.__all__)
    for name in core.__all__:
        assert getattr(core, name) is not None, name


def test_errors_share_a_base_and_the_usual_builtins() -> None:
    assert issubclass(core.SpecError, ValueError) and issubclass(core.SpecError, core.TTTv2Error)
    assert issubclass(core.ModeNotSupportedError, ValueError)
    assert issubclass(core.UnknownNameError, LookupError)
    for name in ("StrategyError", "KVCacheExhaustedError"):
        assert issubclass(getattr(core, name), core.TTTv2Error)
