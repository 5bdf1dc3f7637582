"""Memory of a real TransformerStack, measured with tttv2.testing's harness (tensor
storages allocated during the call; weights and the preallocated KV cache excluded).

* Prefill of ``T`` tokens holds at most one layer's activations at a time: about
  ``T * (8 * hidden + 4 * intermediate)`` fp32 values (residual, norm, q/k/v, attention
  output, gate/up/activation/product), plus logits for the rows that ask for them. The
  bound is that, once: keeping every layer's activations, computing the head for every
  token (``T * vocab``, 6 MiB here) or materialising ``[heads, T, T]`` attention scores
  exceeds it. After the pass nothing is kept but rotary rows (at most a cos/sin table of
  ``max_seq_len`` positions).
* Decode steps writing into the preallocated paged cache leave no tensor behind: live
  bytes after 8 steps (crossing a KV block boundary, within the rotary table already
  built) equal those after warmup, op by op and through the fused decode layers. A stack
  that keeps each step's hidden state does not pass the same check.
"""

from __future__ import annotations

import pytest
import torch

from tttv2.blocks import TransformerStack, fuse_projections
from tttv2.core import (
    AttentionSpec,
    DecoderLayerSpec,
    EmbeddingSpec,
    FeedForwardSpec,
    KVBlockManager,
    LMHeadSpec,
    ModelSpec,
    NormSpec,
    RopeSpec,
)
from tttv2.testing.harness import check_no_memory_growth, peak_memory

HIDDEN, HEADS, KV_HEADS, INTERMEDIATE, VOCAB, LAYERS, MAX_SEQ = 64, 4, 2, 128, 8192, 2, 512
HEAD_DIM = HIDDEN // HEADS
#: Decode steps 3..10 (the measured ones) cross the block boundary at 208 and stay within
#: the 256-position rotary table the prefill built (the table grows to the next power of
#: two when a longer sequence first arrives: a cache bounded by ``ROTARY_TABLE``).
PROMPT = 200
BLOCK = 16
FP32 = 4
#: One layer's activations for the prompt, and the one logits row a prefill asks for.
PREFILL_BOUND = FP32 * (PROMPT * (8 * HIDDEN + 4 * INTERMEDIATE) + VOCAB)
#: cos and sin for every position the stack can see.
ROTARY_TABLE = 2 * FP32 * MAX_SEQ * HEAD_DIM // 2


def _stack(fused: bool) -> TransformerStack:
    norm = NormSpec(dim=HIDDEN, eps=1e-5)
    attention = AttentionSpec(
        hidden_dim=HIDDEN,
        num_heads=HEADS,
        num_kv_heads=KV_HEADS,
        max_seq_len=MAX_SEQ,
        rope=RopeSpec(head_dim=HEAD_DIM, max_position=MAX_SEQ),
    )
    layer = DecoderLayerSpec(
        attention=attention,
        ffn=FeedForwardSpec(hidden_dim=HIDDEN, intermediate_dim=INTERMEDIATE),
        attn_norm=norm,
        ffn_norm=norm,
    )
    spec = ModelSpec(
        embedding=EmbeddingSpec(vocab_size=VOCAB, hidden_dim=HIDDEN),
        layers=(layer,) * LAYERS,
        final_norm=norm,
        lm_head=LMHeadSpec(hidden_dim=HIDDEN, vocab_size=VOCAB),
        max_seq_len=MAX_SEQ,
    )
    torch.manual_seed(0)
    stack = TransformerStack(spec)
    if fused:
        fuse_projections(stack)
    return stack


def _prefilled(stack: TransformerStack):
    cache = stack.new_cache(MAX_SEQ // BLOCK, BLOCK)
    blocks = KVBlockManager(MAX_SEQ // BLOCK, BLOCK, MAX_SEQ)
    ids = torch.randint(0, VOCAB, (PROMPT,), generator=torch.Generator().manual_seed(1))
    meta = blocks.prepare([0], [PROMPT], "prefill")
    return cache, blocks, ids, meta


def _decode_step(stack: TransformerStack, cache, blocks: KVBlockManager):
    def step(i: int) -> torch.Tensor:
        meta = blocks.prepare([0], [1], "decode")
        return stack(torch.tensor([(7 * i) % VOCAB]), meta, cache)

    return step


def test_prefill_peak_stays_within_one_layer_of_activations() -> None:
    stack = _stack(fused=False)
    cache, _, ids, meta = _prefilled(stack)
    with torch.inference_mode():
        report = peak_memory(lambda: stack(ids, meta, cache))
    assert report.peak_bytes <= PREFILL_BOUND, f"{report}; bound {PREFILL_BOUND / 2**20:.3f} MiB"
    assert report.retained_bytes <= ROTARY_TABLE, f"{report}; at most {ROTARY_TABLE} B may stay"


@pytest.mark.parametrize("fused", [False, True], ids=["op_by_op", "fused_layers"])
def test_decode_steps_allocate_nothing_that_persists(fused: bool) -> None:
    stack = _stack(fused)
    cache, blocks, ids, meta = _prefilled(stack)
    with torch.inference_mode():
        stack(ids, meta, cache)
        report = check_no_memory_growth(_decode_step(stack, cache, blocks), steps=8, warmup=2)
    assert report.passed, report.message
    assert (stack.fused_decode_reason is None) == fused, (
        stack.fused_decode_reason
    )  # the path meant ran
    assert blocks.seq_len(0) == PROMPT + 10


def test_a_stack_that_keeps_each_steps_hidden_state_fails_the_check() -> None:
    stack = _stack(fused=False)
    kept: list[torch.Tensor] = []
    stack.final_norm.register_forward_hook(lambda _m, _args, out: kept.append(out))
    cache, blocks, ids, meta = _prefilled(stack)
    with torch.inference_mode():
        stack(ids, meta, cache)
        report = check_no_memory_growth(_decode_step(stack, cache, blocks), steps=8, warmup=2)
    assert not report.passed
    assert report.growth_bytes >= 8 * HIDDEN * FP32, report.message
