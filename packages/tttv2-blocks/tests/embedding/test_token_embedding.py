"""TokenEmbedding: plain lookup, Gemma's scale applied in the output dtype (bit-equal to
HF), GPT-2's learned absolute positions; equal to the float64 reference for random specs."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.models.gemma.modeling_gemma import GemmaTextScaledWordEmbedding

from tttv2.blocks import TokenEmbedding
from tttv2.core import EmbeddingSpec, ModuleConfig, create_module
from tttv2.testing.reference.embedding import reference_embedding


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_scaled_embedding_equals_gemma_bit_for_bit(dtype: torch.dtype) -> None:
    hidden = 48
    spec = EmbeddingSpec(vocab_size=100, hidden_dim=hidden, scale=math.sqrt(hidden))
    ours = TokenEmbedding(spec).to(dtype)
    hf = GemmaTextScaledWordEmbedding(100, hidden, padding_idx=0, embed_scale=hidden**0.5).to(dtype)
    with torch.no_grad():
        hf.weight.copy_(ours.weight)
    ids = torch.tensor([1, 5, 99, 5, 0])
    y = ours(ids)
    assert y.dtype == dtype and y.shape == (5, hidden)
    assert torch.equal(y, hf(ids))
    # the scale is rounded to the dtype first, as Gemma does (sqrt(48) is not a bf16 number)
    expected = ours.weight[ids] * torch.tensor(math.sqrt(hidden), dtype=dtype)
    assert torch.equal(y, expected)


def test_learned_positions_follow_gpt2() -> None:
    spec = EmbeddingSpec(vocab_size=50, hidden_dim=16, max_positions=32)
    emb = TokenEmbedding(spec)
    assert emb.position_embedding.shape == (32, 16)
    ids, positions = torch.tensor([3, 4, 7]), torch.tensor([10, 11, 0])
    wte = torch.nn.Embedding(50, 16, _weight=emb.weight.detach().clone())
    wpe = torch.nn.Embedding(32, 16, _weight=emb.position_embedding.detach().clone())
    torch.testing.assert_close(emb(ids, positions), wte(ids) + wpe(positions), rtol=0, atol=0)
    with pytest.raises(ValueError, match="needs positions"):
        emb(ids)


@settings(max_examples=30, deadline=None)
@given(
    vocab=st.integers(1, 64),
    hidden=st.integers(1, 32),
    scale=st.none() | st.floats(0.1, 100.0),
    max_positions=st.none() | st.integers(1, 64),
    data=st.data(),
)
def test_embedding_matches_reference(vocab, hidden, scale, max_positions, data) -> None:
    spec = EmbeddingSpec(
        vocab_size=vocab, hidden_dim=hidden, scale=scale, max_positions=max_positions
    )
    emb = TokenEmbedding(spec)
    ids = torch.tensor(data.draw(st.lists(st.integers(0, vocab - 1), min_size=1, max_size=8)))
    positions = torch.tensor(
        data.draw(
            st.lists(st.integers(0, (max_positions or 1) - 1), min_size=len(ids), max_size=len(ids))
        )
    )
    expected = reference_embedding(ids, dict(emb.state_dict()), spec, positions)
    torch.testing.assert_close(emb(ids, positions).double(), expected, rtol=1e-6, atol=1e-6)


def test_bad_ids_are_reported() -> None:
    emb = create_module(ModuleConfig(EmbeddingSpec(vocab_size=4, hidden_dim=2)))
    assert isinstance(emb, TokenEmbedding) and emb.position_embedding is None
    with pytest.raises(ValueError, match="integer token ids"):
        emb(torch.tensor([0.0, 1.0]))
