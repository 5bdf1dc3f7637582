"""The runtime needs only forward() and new_cache(); a pass that fails once is retried."""

import pytest
from reference_causal_lm import ReferenceCausalLM, greedy_reference

from tttv2.serve.runtime import (
    CausalLM,
    InvalidParameterError,
    LLMEngine,
    SamplingParams,
    StopConditions,
)


class Minimal:
    """Only the two required methods: no set_mode, no supported_modes, no vocab_size."""

    def __init__(self, model: ReferenceCausalLM) -> None:
        self.model = model

    def new_cache(self, num_blocks, block_size, dtype=None):
        return self.model.new_cache(num_blocks, block_size, dtype)

    def forward(self, input_ids, meta, cache):
        self.model.current_mode = meta.mode  # the reference checks modes; this model has none
        return self.model(input_ids, meta, cache)


class FailsOnce(Minimal):
    def __init__(self, model: ReferenceCausalLM, fail_at: int) -> None:
        super().__init__(model)
        self.calls, self.fail_at = 0, fail_at

    def forward(self, input_ids, meta, cache):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("device error")
        return super().forward(input_ids, meta, cache)


MODEL = ReferenceCausalLM(seed=61, max_seq_len=64)


def test_a_model_with_only_forward_and_new_cache_is_served():
    model = Minimal(MODEL)
    assert isinstance(model, CausalLM)
    engine = LLMEngine(model, num_blocks=32, block_size=4, max_seq_len=64)
    assert engine.vocab_size == 64  # learned from a probe pass
    assert engine.num_free_blocks == 32  # the probe's block was given back
    out = engine.generate([[3, 1, 4, 1, 5]], SamplingParams(), StopConditions(max_new_tokens=9))[0]
    assert out.token_ids == greedy_reference(MODEL, [3, 1, 4, 1, 5], 9)


def test_a_vocab_size_the_probe_pass_contradicts_is_refused():
    with pytest.raises(InvalidParameterError, match=r"vocab_size=32 .*vocabulary size 64"):
        LLMEngine(Minimal(MODEL), num_blocks=32, block_size=4, max_seq_len=64, vocab_size=32)
    engine = LLMEngine(Minimal(MODEL), num_blocks=32, block_size=4, max_seq_len=64, vocab_size=64)
    assert engine.vocab_size == 64 and engine.num_free_blocks == 32


def test_not_a_model_and_missing_max_seq_len_are_clear_errors():
    with pytest.raises(TypeError, match="not a CausalLM.*new_cache"):
        LLMEngine(object(), num_blocks=8)
    with pytest.raises(ValueError, match="max_seq_len is needed"):
        LLMEngine(Minimal(MODEL), num_blocks=8)


def test_a_pass_that_raises_once_is_retried_and_ends_no_request():
    """A fault that does not recur (the step's retry, each request alone, succeeds) ends
    no request: both produce their undisturbed tokens and the blocks all come back."""
    model = FailsOnce(MODEL, fail_at=4)  # 1: probe; 4: a pass in the middle of generation
    engine = LLMEngine(model, num_blocks=32, block_size=4, max_seq_len=64, max_num_batched_tokens=8)
    prompts = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [11, 12]]
    outs = engine.generate(prompts, stop=StopConditions(max_new_tokens=6))
    assert model.calls > 4  # the fault was hit
    for p, o in zip(prompts, outs, strict=True):
        assert o.finish_reason == "length" and o.error is None
        assert o.token_ids == greedy_reference(MODEL, p, 6)
    assert engine.num_free_blocks == 32
