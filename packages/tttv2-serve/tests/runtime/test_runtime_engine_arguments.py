"""Engine arguments that contradict the model are refused with errors naming both values:
a ``max_seq_len`` beyond the model's, a ``vocab_size`` other than its logits' width; and
``generate`` says what it takes when given a tensor or a single prompt."""

import pytest
import torch
from reference_causal_lm import ReferenceCausalLM, greedy_reference

from tttv2.core import ExecutionMode
from tttv2.serve.runtime import InvalidParameterError, LLMEngine, SpeculativeDecoder, StopConditions

MODEL = ReferenceCausalLM(seed=71, vocab_size=64, max_seq_len=64)
DRAFT = MODEL.truncated(1, modes=(ExecutionMode.PREFILL, ExecutionMode.DECODE))


def test_max_seq_len_beyond_the_model_is_refused_naming_both():
    with pytest.raises(
        InvalidParameterError, match=r"LLMEngine\.max_seq_len=200 .*model's max_seq_len \(64\)"
    ):
        LLMEngine(MODEL, num_blocks=64, block_size=4, max_seq_len=200)
    with pytest.raises(InvalidParameterError, match=r"SpeculativeDecoder\.max_seq_len=65 .*\(64\)"):
        SpeculativeDecoder(MODEL, DRAFT, 2, num_blocks=64, block_size=4, max_seq_len=65)


def test_max_seq_len_may_lower_the_models_limit():
    engine = LLMEngine(MODEL, num_blocks=64, block_size=4, max_seq_len=20)
    assert engine.context_limit == 20
    out = engine.generate([list(range(15))])[0]
    assert out.finish_reason == "context"
    assert out.token_ids == greedy_reference(MODEL, list(range(15)), 5)
    assert LLMEngine(MODEL, num_blocks=64, block_size=4, max_seq_len=64).context_limit == 64


@pytest.mark.parametrize("vocab_size", [10, 63, 65])
def test_vocab_size_other_than_the_models_is_refused_naming_both(vocab_size):
    with pytest.raises(
        InvalidParameterError, match=rf"LLMEngine\.vocab_size={vocab_size} .*vocabulary size 64"
    ):
        LLMEngine(MODEL, num_blocks=16, block_size=4, vocab_size=vocab_size)
    with pytest.raises(
        InvalidParameterError, match=rf"SpeculativeDecoder\.vocab_size={vocab_size} .*size 64"
    ):
        SpeculativeDecoder(MODEL, DRAFT, 2, num_blocks=16, block_size=4, vocab_size=vocab_size)


def test_the_models_own_vocab_size_is_accepted_and_every_id_is_inside_it():
    engine = LLMEngine(MODEL, num_blocks=64, block_size=4, vocab_size=64)
    out = engine.generate([[1, 2, 3]], stop=StopConditions(max_new_tokens=20))[0]
    assert out.token_ids == greedy_reference(MODEL, [1, 2, 3], 20)
    assert max(out.token_ids) < engine.vocab_size == 64


def test_a_batch_tensor_is_refused_saying_how_to_pass_it():
    engine = LLMEngine(MODEL, num_blocks=64, block_size=4)
    batch = torch.tensor([[1, 2, 3], [4, 5, 6]])
    with pytest.raises(TypeError, match=r"2-D tensor of shape \[2, 3\].*list\(prompts\)") as err:
        engine.generate(batch)
    assert "1-D integer tensor" in str(err.value)  # what each prompt may be
    rows = engine.generate(list(batch), stop=StopConditions(max_new_tokens=3))
    assert [o.token_ids for o in rows] == [greedy_reference(MODEL, p, 3) for p in batch.tolist()]


@pytest.mark.parametrize("single", [[1, 2, 3], torch.tensor([1, 2, 3])], ids=["list", "1-D tensor"])
def test_a_single_prompt_is_refused_saying_to_wrap_it(single):
    engine = LLMEngine(MODEL, num_blocks=64, block_size=4)
    with pytest.raises(TypeError, match=r"list of prompts.*\[prompt\]"):
        engine.generate(single)
