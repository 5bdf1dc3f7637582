"""no_init_weights: a model built for loading skips the random draw, loads to the same
outputs as one built normally, and torch.nn.init is restored afterwards."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from tttv2.blocks import TransformerStack
from tttv2.blocks.weights import SafetensorsCheckpoint, load_weights, no_init_weights
from tttv2.core import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    ExecutionMode,
    FeedForwardSpec,
    LMHeadSpec,
    ModelSpec,
    NormSpec,
    RopeSpec,
)

HIDDEN, VOCAB = 32, 53


def _spec() -> ModelSpec:
    norm = NormSpec(dim=HIDDEN, eps=1e-5)
    attention = AttentionSpec(hidden_dim=HIDDEN, num_heads=4, num_kv_heads=2, max_seq_len=64,
                              qkv_bias=True, rope=RopeSpec(head_dim=8, theta=500.0))  # fmt: skip
    layer = DecoderLayerSpec(attention=attention, ffn=FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=48),
                             attn_norm=norm, ffn_norm=norm)  # fmt: skip
    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN),
        layers=(layer, layer),
        final_norm=norm,
        lm_head=LMHeadSpec(hidden_dim=HIDDEN, vocab_size=VOCAB, tied=False),
        max_seq_len=64,
    )


def _logits(stack: TransformerStack, tokens: list[int]) -> torch.Tensor:
    cache = stack.new_cache(8, 8)
    meta = cache.block_manager(64).prepare([0], [len(tokens)], ExecutionMode.PREFILL)
    with torch.inference_mode():
        return stack(torch.tensor(tokens), meta, cache)


def test_building_under_no_init_weights_draws_no_random_numbers() -> None:
    torch.manual_seed(0)
    before = torch.get_rng_state()
    TransformerStack(_spec())
    assert not torch.equal(torch.get_rng_state(), before)  # a normal build draws

    before = torch.get_rng_state()
    with no_init_weights():
        TransformerStack(_spec())
    assert torch.equal(torch.get_rng_state(), before)


def test_model_built_without_init_loads_to_the_same_logits(tmp_path) -> None:
    torch.manual_seed(1)
    reference = TransformerStack(_spec()).eval()
    save_file(
        {k: v.contiguous() for k, v in reference.state_dict().items()},
        tmp_path / "model.safetensors",
    )

    with no_init_weights():
        built = TransformerStack(_spec()).eval()
    with SafetensorsCheckpoint(tmp_path) as checkpoint:
        load_weights(built, checkpoint)
    tokens = [3, 1, 4, 1, 5, 9, 2, 6]
    assert torch.equal(_logits(built, tokens), _logits(reference, tokens))


def test_initialisers_are_restored_even_after_an_error() -> None:
    original = torch.nn.init.kaiming_uniform_
    with pytest.raises(RuntimeError, match="boom"), no_init_weights():
        assert torch.nn.init.kaiming_uniform_ is not original
        raise RuntimeError("boom")
    assert torch.nn.init.kaiming_uniform_ is original
    weight = torch.nn.init.normal_(torch.zeros(64))
    assert weight.abs().sum() > 0  # draws again
