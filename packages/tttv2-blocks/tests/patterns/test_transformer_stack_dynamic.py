"""TransformerStack with a dynamic strategy: every pass gives the strategy its runtime
context, so a long prompt runs through the chunked LONG_CONTEXT attention and a short one
through plain PREFILL, with the logits of the plain prefill/decode stack; stacks without a
context-driven strategy only switch mode when the mode changes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from patterns_helpers import run_passes

from tttv2.blocks import TransformerStack
from tttv2.blocks.building_blocks.attention.implementations import (
    LongContextAttention,
    PrefillAttention,
)
from tttv2.core import (
    AttentionSpec,
    DecoderLayerSpec,
    DynamicStrategy,
    EmbeddingSpec,
    ExecutionMode,
    FeedForwardSpec,
    LMHeadSpec,
    ModelSpec,
    MultiModeStrategy,
    NormSpec,
    RopeSpec,
    StrategyRegistry,
)

P, D = ExecutionMode.PREFILL, ExecutionMode.DECODE
VOCAB, HIDDEN, MAX_LEN, LONG = 64, 32, 64, 32  # prompts of LONG tokens or more are long
SMALL_CHUNKS = "test_multi_mode_chunks_of_8"


class _MultiModeChunksOf8(MultiModeStrategy):
    name = SMALL_CHUNKS

    def __init__(self, **options: object) -> None:
        super().__init__(chunk_size=8, **options)  # a 40-token prompt is five chunks


@pytest.fixture
def small_chunks() -> Iterator[str]:
    StrategyRegistry.register(SMALL_CHUNKS, _MultiModeChunksOf8)
    yield SMALL_CHUNKS
    StrategyRegistry.unregister(SMALL_CHUNKS)


def _spec() -> ModelSpec:
    rope = RopeSpec(head_dim=8, max_position=MAX_LEN)
    norm = NormSpec(dim=HIDDEN, eps=1e-5)
    layer = DecoderLayerSpec(
        attention=AttentionSpec(
            hidden_dim=HIDDEN, num_heads=4, num_kv_heads=2, rope=rope, max_seq_len=MAX_LEN
        ),
        ffn=FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=48),
        attn_norm=norm,
        ffn_norm=norm,
    )
    return ModelSpec(
        embedding=EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN),
        layers=(layer, layer),
        final_norm=norm,
        lm_head=LMHeadSpec(hidden_dim=HIDDEN, vocab_size=VOCAB),
        max_seq_len=MAX_LEN,
    )


def _long_prompts_chunked(strategy: str) -> DynamicStrategy:
    return DynamicStrategy(
        rules=[
            {
                "strategy": strategy,
                "when": {"min_seq_len": LONG},
                "remap": {"prefill": "long_context"},
            }
        ]
    )


def _record_attention_implementations(stack: TransformerStack) -> list[type]:
    """The implementation class every attention call of ``stack`` runs, in call order."""
    ran: list[type] = []
    for layer in stack.layers:
        for impl in set(layer.attention.implementations.values()):

            def forward(*args, _impl=impl, _forward=impl.forward, **kwargs):
                ran.append(type(_impl))
                return _forward(*args, **kwargs)

            impl.forward = forward
    return ran


def _implementations_per_pass(stack: TransformerStack, ran: list[type]) -> list[list[type]]:
    """Filled as ``stack`` runs: the attention implementations each pass ran."""
    per_pass: list[list[type]] = []

    def start_pass(_module, _args):
        per_pass.append([])
        ran.clear()

    def end_pass(_module, _args, _out):
        per_pass[-1].extend(ran)

    stack.register_forward_pre_hook(start_pass)
    stack.register_forward_hook(end_pass)
    return per_pass


# a long prompt, a short prompt, then one decode step for both
SCHEDULE = [([(0, 40)], P), ([(1, 6)], P), ([(0, 1), (1, 1)], D)]


def _tokens() -> dict[int, list[int]]:
    return {0: torch.randint(0, VOCAB, (44,)).tolist(), 1: torch.randint(0, VOCAB, (9,)).tolist()}


def _check_dynamic_run(plain: TransformerStack, dynamic: TransformerStack) -> None:
    per_pass = _implementations_per_pass(dynamic, _record_attention_implementations(dynamic))
    tokens = _tokens()
    expected = run_passes(plain, tokens, SCHEDULE)
    got = run_passes(dynamic, tokens, SCHEDULE)
    layers = len(dynamic.layers)
    assert per_pass[0] == [LongContextAttention] * layers, f"40-token prompt ran {per_pass[0]}"
    assert per_pass[1] == [PrefillAttention] * layers, f"6-token prompt ran {per_pass[1]}"
    assert len(per_pass[2]) == layers and LongContextAttention not in per_pass[2]
    assert got.keys() == expected.keys()
    for key, row in got.items():
        error = (row - expected[key]).abs().max().item()
        assert error < 1e-5, f"sequence {key[0]} position {key[1]}: logits differ by {error}"


def test_dynamic_stack_picks_the_implementation_per_pass_with_equal_logits(
    small_chunks: str,
) -> None:
    torch.manual_seed(0)
    plain = TransformerStack(_spec())
    dynamic = TransformerStack(_spec(), execution_strategy=_long_prompts_chunked(small_chunks))
    dynamic.load_state_dict(plain.state_dict())
    _check_dynamic_run(plain, dynamic)


def test_switching_to_a_dynamic_strategy_gives_it_the_context(small_chunks: str) -> None:
    torch.manual_seed(1)
    plain = TransformerStack(_spec())
    stack = TransformerStack(_spec())
    stack.load_state_dict(plain.state_dict())
    stack.switch_strategy(_long_prompts_chunked(small_chunks))
    _check_dynamic_run(plain, stack)


def test_a_stack_without_a_dynamic_strategy_sets_the_mode_only_when_it_changes() -> None:
    stack = TransformerStack(_spec())
    modes: list[ExecutionMode] = []
    set_mode = stack.set_mode

    def counting_set_mode(mode, context=None):
        assert context is None
        modes.append(ExecutionMode(mode))
        set_mode(mode, context)

    stack.set_mode = counting_set_mode
    run_passes(stack, _tokens(), [*SCHEDULE, ([(0, 1), (1, 1)], D), ([(0, 1)], D)])
    assert modes == [D]  # built in PREFILL; the three decode passes switch once
