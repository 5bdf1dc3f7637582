"""LMHead: tied heads share the embedding's Parameter (stored once), untied heads own
theirs (with optional bias), final-logit soft-capping; equal to the reference."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tttv2.blocks import LMHead, TokenEmbedding
from tttv2.core import EmbeddingSpec, LMHeadSpec, ModuleConfig, create_module
from tttv2.testing.reference.embedding import reference_lm_head


def test_tied_head_shares_the_embedding_parameter() -> None:
    emb = TokenEmbedding(EmbeddingSpec(vocab_size=30, hidden_dim=8))
    head = LMHead(LMHeadSpec(hidden_dim=8, vocab_size=30, tied=True), embedding=emb)
    assert head.weight is emb.weight
    both = torch.nn.ModuleDict({"emb": emb, "head": head})
    assert sum(p.numel() for p in both.parameters()) == 30 * 8  # stored once
    with torch.no_grad():
        emb.weight[3].fill_(1.0)  # an update through one is seen by the other
    x = torch.ones(1, 8)
    assert head(x)[0, 3] == 8.0


def test_tied_head_needs_a_matching_embedding() -> None:
    spec = LMHeadSpec(hidden_dim=8, vocab_size=30, tied=True)
    with pytest.raises(ValueError, match="needs embedding"):
        LMHead(spec)
    with pytest.raises(ValueError, match="does not match"):
        LMHead(spec, embedding=TokenEmbedding(EmbeddingSpec(vocab_size=31, hidden_dim=8)))


def test_softcap_follows_gemma2() -> None:
    head = LMHead(LMHeadSpec(hidden_dim=4, vocab_size=6, final_logit_softcap=30.0))
    x = torch.randn(3, 4) * 50
    raw = x @ head.weight.T
    expected = torch.tanh(raw / 30.0) * 30.0  # Gemma2ForCausalLM's order of operations
    assert torch.equal(head(x), expected)
    assert head(x).abs().max() <= 30.0


@settings(max_examples=30, deadline=None)
@given(
    hidden=st.integers(1, 24),
    vocab=st.integers(1, 40),
    bias=st.booleans(),
    cap=st.none() | st.floats(1.0, 50.0),
    tokens=st.integers(1, 5),
)
def test_head_matches_reference(hidden, vocab, bias, cap, tokens) -> None:
    spec = LMHeadSpec(hidden_dim=hidden, vocab_size=vocab, bias=bias, final_logit_softcap=cap)
    head = LMHead(spec)
    if bias:
        with torch.no_grad():
            head.bias.normal_()
    x = torch.randn(tokens, hidden) * 10
    expected = reference_lm_head(x, dict(head.state_dict()), spec)
    torch.testing.assert_close(head(x).double(), expected, rtol=1e-5, atol=1e-5)


def test_create_module_builds_an_untied_head() -> None:
    head = create_module(ModuleConfig(LMHeadSpec(hidden_dim=4, vocab_size=9, bias=True)))
    assert isinstance(head, LMHead) and head.bias.shape == (9,)
