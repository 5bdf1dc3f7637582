"""The ``int8`` precision preset stored as int8 (Int8Linear projections, an int8 LM head)
and decoded by the native int8 kernels: the logits of a stack whose weights went through
int8_round_trip (computed by PyTorch on those values), fused and op by op."""

from __future__ import annotations

import pytest
import torch
from test_fused_decode import PROMPTS, _spec, _stack

from tttv2.blocks import apply_precision_policy
from tttv2.blocks.building_blocks.linear import Int8Linear
from tttv2.core import ExecutionMode
from tttv2.hw.precision import int8_round_trip


def _round_tripped(stack) -> None:
    """The reference: every projection and the LM head through int8_round_trip in place,
    the embedding rounded to bf16 (the preset's embedding format), still plain tensors."""
    with torch.no_grad():
        for m in stack.modules():
            if type(m) is torch.nn.Linear:
                m.weight.copy_(int8_round_trip(m.weight))
        emb = stack.embedding.weight
        if stack.spec.lm_head.tied:  # the head: an int8 copy of the bf16-held embedding
            emb.copy_(emb.to(torch.bfloat16).to(emb.dtype))
            stack.lm_head.weight = torch.nn.Parameter(int8_round_trip(emb.detach().clone()))
        else:
            emb.copy_(emb.to(torch.bfloat16).to(emb.dtype))
            stack.lm_head.weight.copy_(int8_round_trip(stack.lm_head.weight))


def _teacher_forced(stack, steps: int = 5) -> tuple[list[torch.Tensor], list]:
    """Prefill logits, then ``steps`` decode passes fed fixed tokens (both stacks see the
    same inputs whatever their argmax); the logits and fused-path reason of each pass."""
    cache = stack.new_cache(64, 4)
    blocks = cache.block_manager(128)
    seqs = list(range(len(PROMPTS)))
    out, reasons = [], []
    with torch.inference_mode():
        meta = blocks.prepare(seqs, [len(p) for p in PROMPTS], ExecutionMode.PREFILL)
        out.append(stack(torch.tensor([t for p in PROMPTS for t in p]), meta, cache).float())
        for step in range(steps):
            meta = blocks.prepare(seqs, [1] * len(PROMPTS), ExecutionMode.DECODE)
            out.append(
                stack(torch.tensor([(7 * step + 3 * s) % 97 for s in seqs]), meta, cache).float()
            )
            reasons.append(stack.fused_decode_reason)
    return out, reasons


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "op_by_op"])
def test_int8_decode_equals_round_tripped_weights_fp32(tied: bool, fused: bool) -> None:
    spec = _spec(bias=True)
    if tied:
        spec = spec.__class__(**{**spec.__dict__, "lm_head": spec.lm_head.__class__(
            **{**spec.lm_head.__dict__, "tied": True})})  # fmt: skip
    int8 = _stack(spec, torch.float32, fused)
    counts = apply_precision_policy(int8, "int8")
    assert counts == {"int8": 13, "bfloat16": 1}  # 3 layers x 4 projections + the head; embedding
    assert all(isinstance(layer.attention.qkv_proj, Int8Linear) for layer in int8.layers)
    assert int8.lm_head.int8_weight.dtype == torch.int8
    reference = _stack(spec, torch.float32, fused)
    _round_tripped(reference)
    got, reasons = _teacher_forced(int8)
    want, _ = _teacher_forced(reference)
    assert reasons == ([None] * 5 if fused else ["fuse_decode_layers is off"] * 5)
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-5)  # prefill: the same weights
    for a, b in zip(got[1:], want[1:], strict=True):  # decode: scale applied after the sum
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_int8_decode_bf16_close_to_round_tripped_bf16_weights() -> None:
    spec = _spec(bias=True)
    int8 = _stack(spec, torch.bfloat16, True)
    apply_precision_policy(int8, "int8")
    reference = _stack(spec, torch.bfloat16, True)
    _round_tripped(reference)
    got, reasons = _teacher_forced(int8)
    want, _ = _teacher_forced(reference)
    assert reasons == [None] * 5
    for a, b in zip(got, want, strict=True):
        assert (a - b).norm() <= 2e-2 * b.norm()
        assert (a.argmax(-1) == b.argmax(-1)).float().mean() >= 0.6


def test_fused_int8_equals_op_by_op_int8() -> None:
    spec = _spec()
    fused, eager = _stack(spec, torch.bfloat16, True), _stack(spec, torch.bfloat16, False)
    apply_precision_policy(fused, "int8")
    apply_precision_policy(eager, "int8")
    a, _ = _teacher_forced(fused)
    b, _ = _teacher_forced(eager)
    for x, y in zip(a, b, strict=True):  # the same kernels and roundings
        torch.testing.assert_close(x, y, rtol=2**-7, atol=2e-2)
