"""Generation through tttv2.serve.runtime with our Llama (tttv2.testing.model_kit): seeded
sampling is reproducible and draws only tokens transformers ranks in the top k; EOS,
length and context limits stop generation where they should; streamed text is the
tokenizer's decoding."""

from __future__ import annotations

import pytest
from tttv2_llama3 import load

from tttv2.testing.model_kit import (
    check_sampled_tokens_in_reference_top_k,
    check_seeded_sampling,
    check_stops,
    check_streamed_text,
)


@pytest.fixture(scope="module")
def tiny(build):
    ck = build({"tie_word_embeddings": True})
    return ck, load(ck.path)


def test_seeded_sampling_is_reproducible_and_seed_dependent(tiny):
    ck, loaded = tiny
    check_seeded_sampling(loaded, ck.vocab_size)


def test_sampled_tokens_are_in_transformers_top_k(tiny):
    ck, loaded = tiny
    check_sampled_tokens_in_reference_top_k(loaded, ck)


def test_eos_length_and_context_stop_generation(tiny):
    ck, loaded = tiny
    check_stops(loaded, ck.vocab_size)


def test_streamed_text_is_the_tokenizer_decoding(tiny):
    ck, loaded = tiny
    check_streamed_text(loaded, ck.vocab_size)
