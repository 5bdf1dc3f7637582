"""The tests every model project keeps, as functions its test files call with the
model's ``load`` and a tiny checkpoint (``tttv2.testing.hf.build_tiny_checkpoint``):
fp32/bf16 parity with transformers, generation through the engine, continuous batching;
and ``ReleasedPinsTests``, the check that the project runs the released wheels it pins.
Needs the ``hf`` extra."""

from tttv2.testing.model_kit.fixtures import checkpoint_builder, shared_cache_dir
from tttv2.testing.model_kit.generation import (
    REQUESTS,
    check_continuous_batching,
    check_sampled_tokens_in_reference_top_k,
    check_seeded_sampling,
    check_stops,
    check_streamed_text,
)
from tttv2.testing.model_kit.parity import (
    BF16_PCC,
    BF16_TOP1,
    FP32_ATOL,
    GREEDY_STEPS,
    check_bf16_layers,
    check_bf16_parity,
    check_fp32_logits,
    check_fp32_parity,
)
from tttv2.testing.model_kit.released_pins import (
    ReleasedPinsTests,
    check_architecture_entry_point,
    check_installed_release,
    check_module_in_environment,
    pinned_releases,
)
from tttv2.testing.model_kit.running import BLOCK_SIZE, engine_for, generate, prefill, prompt
from tttv2.testing.model_kit.training import trained_checkpoint

__all__ = [
    "BF16_PCC",
    "BF16_TOP1",
    "BLOCK_SIZE",
    "FP32_ATOL",
    "GREEDY_STEPS",
    "REQUESTS",
    "ReleasedPinsTests",
    "check_architecture_entry_point",
    "check_bf16_layers",
    "check_bf16_parity",
    "check_continuous_batching",
    "check_fp32_logits",
    "check_fp32_parity",
    "check_installed_release",
    "check_module_in_environment",
    "check_sampled_tokens_in_reference_top_k",
    "check_seeded_sampling",
    "check_stops",
    "check_streamed_text",
    "checkpoint_builder",
    "engine_for",
    "generate",
    "pinned_releases",
    "prefill",
    "prompt",
    "shared_cache_dir",
    "trained_checkpoint",
]
