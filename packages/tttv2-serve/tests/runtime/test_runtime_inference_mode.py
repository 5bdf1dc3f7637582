"""An engine step runs in inference mode whether or not its caller holds it: ``generate``
holds it across its steps (so no step pays for entering it), and tensors the engine made
there (the host pool a preemption swaps into) are changed again by steps a caller drives
outside it, with the same tokens as a pool that never preempts."""

import pytest
import torch
from runtime_helpers import random_prompts
from stack_model import tiny_model_spec, tiny_stack

from tttv2.serve.runtime import LLMEngine, SamplingParams, StopConditions

STOP = StopConditions(max_new_tokens=12)


@pytest.fixture(scope="module")
def stack():
    spec = tiny_model_spec(num_layers=2, hidden=64, vocab_size=256, max_seq_len=128)
    return tiny_stack(spec, strategy="prefill_decode", dtype=torch.bfloat16)


def _engine(model, num_blocks: int, swap_blocks: int = 0) -> LLMEngine:
    return LLMEngine(
        model, num_blocks=num_blocks, block_size=4, dtype=torch.bfloat16, swap_blocks=swap_blocks,
        max_num_batched_tokens=2048, long_prefill_token_threshold=2048, max_num_seqs=64,
    )  # fmt: skip


def _step_until_done(engine: LLMEngine, prompts: list[list[int]]) -> list[list[int]]:
    ids = [engine.add_request(p, SamplingParams(), STOP) for p in prompts]
    for _ in range(10_000):
        if not engine.has_unfinished():
            break
        assert not torch.is_inference_mode_enabled()
        engine.step()
    assert not engine.has_unfinished()
    return [engine.pop_output(i).token_ids for i in ids]


def test_steps_outside_inference_mode_reuse_what_generate_made_inside_it(stack) -> None:
    first = random_prompts(64, 256, 4, 20, seed=7)
    then = random_prompts(64, 256, 4, 20, seed=8)
    roomy = _engine(stack, 2000)
    expected_first = [o.token_ids for o in roomy.generate(first, SamplingParams(), STOP)]
    expected_then = _step_until_done(roomy, then)
    assert roomy.stats.preemptions == 0

    engine = _engine(stack, 40, swap_blocks=200)
    assert [o.token_ids for o in engine.generate(first, SamplingParams(), STOP)] == expected_first
    swapped = engine.stats.swapped_out_blocks
    assert swapped > 0  # the host pool was made inside generate's inference mode
    assert _step_until_done(engine, then) == expected_then
    assert engine.stats.swapped_out_blocks > swapped  # and written again by these steps
    assert engine.stats.swapped_out_blocks == engine.stats.swapped_in_blocks


def test_the_model_runs_in_inference_mode_and_generate_holds_it(stack) -> None:
    seen: list[bool] = []
    engine = _engine(stack, 200)
    handle = stack.register_forward_pre_hook(
        lambda *_: seen.append(torch.is_inference_mode_enabled())
    )
    entered = 0
    original = torch.inference_mode.__enter__

    def counting_enter(self):
        nonlocal entered
        entered += 1
        return original(self)

    try:
        torch.inference_mode.__enter__ = counting_enter  # type: ignore[method-assign]
        outputs = engine.generate(random_prompts(3, 256, 4, 9, seed=1), SamplingParams(), STOP)
    finally:
        torch.inference_mode.__enter__ = original  # type: ignore[method-assign]
        handle.remove()
    assert all(len(o.token_ids) == STOP.max_new_tokens for o in outputs)
    assert len(seen) >= STOP.max_new_tokens and all(seen)
    assert entered == 1  # once for the whole generate, not once per step or pass


def test_callbacks_run_in_the_callers_mode(stack) -> None:
    """The step's own inference mode ends before the callbacks: a tensor a callback makes
    from a step driven outside inference mode is a normal tensor."""
    engine = _engine(stack, 200)
    made: list[torch.Tensor] = []
    engine.add_request(
        random_prompts(1, 256, 4, 9, seed=2)[0],
        SamplingParams(),
        STOP,
        callback=lambda event: made.append(torch.tensor([event.token_id])),
    )
    while engine.has_unfinished():
        engine.step()
    assert len(made) == STOP.max_new_tokens
    assert not any(t.is_inference() for t in made)
    made[0].add_(1)  # an inference tensor would refuse this outside inference mode
