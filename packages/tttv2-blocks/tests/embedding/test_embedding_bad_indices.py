"""Token ids outside the vocabulary and learned positions beyond max_positions raise
EmbeddingIndexError (a ValueError) naming the argument, the value and the valid range,
from TokenEmbedding and from TransformerStack before any layer runs (eager and compiled decode),
instead of torch's bare "index out of range in self"."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tttv2.blocks import EmbeddingIndexError, TokenEmbedding, TransformerStack
from tttv2.core import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    ExecutionMode,
    FeedForwardSpec,
    KVBlockManager,
    LMHeadSpec,
    ModelSpec,
    NormSpec,
)

VOCAB, HIDDEN, POSITIONS = 50, 16, 12


def test_token_id_beyond_the_vocabulary_is_named() -> None:
    emb = TokenEmbedding(EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN))
    with pytest.raises(EmbeddingIndexError) as info:
        emb(torch.tensor([3, VOCAB, 7]))
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, IndexError)
    assert (err.argument, err.value, err.size) == ("input_ids", VOCAB, VOCAB)
    assert str(err) == (
        f"TokenEmbedding: input_ids holds token id {VOCAB}, outside the table: "
        f"expected 0 <= token id < {VOCAB} (EmbeddingSpec.vocab_size={VOCAB})"
    )


def test_negative_token_id_is_named() -> None:
    emb = TokenEmbedding(EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN))
    with pytest.raises(
        EmbeddingIndexError, match=r"input_ids holds token id -2, .* 0 <= token id < 50"
    ):
        emb(torch.tensor([1, -2], dtype=torch.int32))


def test_learned_position_beyond_max_positions_is_named() -> None:
    emb = TokenEmbedding(
        EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN, max_positions=POSITIONS)
    )
    assert emb(torch.tensor([1, 2]), torch.tensor([0, POSITIONS - 1])).shape == (2, HIDDEN)
    with pytest.raises(EmbeddingIndexError) as info:
        emb(torch.tensor([1, 2]), torch.tensor([POSITIONS - 1, POSITIONS + 3]))
    assert (info.value.argument, info.value.value, info.value.size) == (
        "positions",
        POSITIONS + 3,
        POSITIONS,
    )
    assert "0 <= position < 12 (EmbeddingSpec.max_positions=12)" in str(info.value)


@settings(max_examples=40, deadline=None)
@given(vocab=st.integers(1, 40), ids=st.lists(st.integers(-5, 45), min_size=1, max_size=12))
def test_property_raises_exactly_for_ids_outside_the_table(vocab: int, ids: list[int]) -> None:
    emb = TokenEmbedding(EmbeddingSpec(vocab_size=vocab, hidden_dim=4))
    bad_high = [i for i in ids if i >= vocab]
    bad_low = [i for i in ids if i < 0]
    if not bad_high and not bad_low:
        assert torch.equal(emb(torch.tensor(ids)), emb.weight[torch.tensor(ids)])
        return
    with pytest.raises(EmbeddingIndexError) as info:
        emb(torch.tensor(ids))
    assert info.value.value == (max(bad_high) if bad_high else min(bad_low))


def _stack() -> TransformerStack:
    norm = NormSpec(dim=HIDDEN, eps=1e-5)
    layer = DecoderLayerSpec(
        attention=AttentionSpec(hidden_dim=HIDDEN, num_heads=2, max_seq_len=32),
        ffn=FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=24),
        attn_norm=norm,
        ffn_norm=norm,
    )
    return TransformerStack(
        ModelSpec(
            embedding=EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN),
            layers=(layer,),
            final_norm=norm,
            lm_head=LMHeadSpec(hidden_dim=HIDDEN, vocab_size=VOCAB),
            max_seq_len=32,
        )
    )


def test_stack_reports_a_bad_token_id_before_writing_the_cache() -> None:
    stack = _stack()
    cache = stack.new_cache(8, 4)
    meta = KVBlockManager(8, 4, 32).prepare([0], [3], ExecutionMode.PREFILL)
    with pytest.raises(EmbeddingIndexError, match="input_ids holds token id 60,"):
        stack(torch.tensor([1, 60, 2]), meta, cache)
    assert not cache.layer(0).key.any() and not cache.layer(0).value.any()


def test_compiled_decode_reports_a_bad_token_id() -> None:
    stack = _stack().eval()
    stack.compile_decode(backend="eager")  # dynamo traces; the check stays outside the graph
    cache = stack.new_cache(8, 4)
    blocks = KVBlockManager(8, 4, 32)
    with torch.inference_mode():
        stack(torch.tensor([1, 2, 3]), blocks.prepare([0], [3], ExecutionMode.PREFILL), cache)
        stack(torch.tensor([4]), blocks.prepare([0], [1], ExecutionMode.DECODE), cache)
        assert stack.decode_compiled
        with pytest.raises(EmbeddingIndexError, match=f"input_ids holds token id {VOCAB + 5},"):
            stack(torch.tensor([VOCAB + 5]), blocks.prepare([0], [1], ExecutionMode.DECODE), cache)
