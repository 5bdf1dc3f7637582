"""The decode fast paths: fused q/k/v rotated by one call, the per-pass rotary rows, the
linear kernel with its module fallback. Each must compute exactly what the plain path does."""

from __future__ import annotations

import pytest
import torch
from attention_harness import (
    assert_matches,
    make_attention,
    make_cache,
    random_inputs,
    reference_outputs,
    run_schedule,
)

from tttv2.blocks.building_blocks.rope import RotaryEmbedding
from tttv2.blocks.building_blocks.rope import rows as rope_rows
from tttv2.core import AttentionSpec, RopeSpec

ROPE = AttentionSpec(
    hidden_dim=24,
    num_heads=6,
    num_kv_heads=2,
    head_dim=8,
    qkv_bias=True,
    out_bias=True,
    max_seq_len=64,
    rope=RopeSpec(head_dim=8, rotary_dim=8, theta=100.0),
)
SCHEDULE = [
    ("prefill", {0: 5, 1: 7}),
    ("decode", {0: 1, 1: 1}),
    ("decode", {0: 1, 1: 1}),
    ("prefill", {0: 2}),
]  # a chunk after cached context


@pytest.mark.parametrize("interleaved", [False, True])
@pytest.mark.parametrize("rotary_dim", [8, 4])
def test_fused_qkv_rotation_equals_separate_projections(interleaved: bool, rotary_dim: int) -> None:
    spec = ROPE.replace(rope=ROPE.rope.replace(rotary_dim=rotary_dim, interleaved=interleaved))
    attn = make_attention(spec)
    xs = random_inputs(spec, {0: 9, 1: 9})
    cache, manager = make_cache(spec)
    separate = run_schedule(attn, cache, manager, xs, SCHEDULE)
    ref = reference_outputs(attn, {s: xs[s][: len(separate[s])] for s in separate})
    attn.fuse_qkv()
    cache, manager = make_cache(spec)
    fused = run_schedule(attn, cache, manager, xs, SCHEDULE)
    for s in fused:
        assert_matches(fused[s], separate[s], torch.float32, "fused vs separate")
        assert_matches(fused[s], ref[s], torch.float32, "fused vs reference")


def test_project_of_the_fused_layer_returns_q_k_v_of_each_projection() -> None:
    attn = make_attention(ROPE)
    x, positions = torch.randn(5, 24), torch.tensor([0, 3, 4, 9, 10])
    with torch.no_grad():
        q0, k0, v0 = attn.project(x, positions)
        attn.fuse_qkv()
        q1, k1, v1 = attn.project(x, positions)
    for got, want in ((q1, q0), (k1, k0), (v1, v0)):
        assert got.shape == want.shape
        assert_matches(got, want, torch.float32, "project")
    with pytest.raises(ValueError, match="positions must be"):
        attn.project(x, positions[:3])


def test_pass_rows_are_remembered_only_inside_a_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    rotary = RotaryEmbedding(ROPE.rope)
    calls: list[torch.Tensor] = []
    original = RotaryEmbedding.cos_sin

    def counting(self, positions, *args, **kwargs):
        calls.append(positions)
        return original(self, positions, *args, **kwargs)

    monkeypatch.setattr(RotaryEmbedding, "cos_sin", counting)
    cpu = torch.device("cpu")
    a, b = torch.tensor([1, 2, 3]), torch.tensor([1, 2, 3])
    rope_rows.pass_cos_sin(rotary, a, cpu, torch.float32, 4)
    rope_rows.pass_cos_sin(rotary, a, cpu, torch.float32, 4)
    assert len(calls) == 2  # no scope: every call looks up
    with rope_rows.pass_scope():
        first = rope_rows.pass_cos_sin(rotary, a, cpu, torch.float32, 4)
        again = rope_rows.pass_cos_sin(RotaryEmbedding(ROPE.rope), a, cpu, torch.float32, 4)
        assert len(calls) == 3 and again[0] is first[0]  # equal spec, same positions: reused
        rope_rows.pass_cos_sin(rotary, b, cpu, torch.float32, 4)  # another tensor
        rope_rows.pass_cos_sin(rotary, b, cpu, torch.bfloat16, 4)  # another dtype
        other = RotaryEmbedding(ROPE.rope.replace(theta=50.0))
        cos, _ = rope_rows.pass_cos_sin(other, b, cpu, torch.bfloat16, 4)  # another spec
        assert len(calls) == 6
        assert torch.equal(cos, original(other, b, cpu, torch.bfloat16, 4)[0])
    rope_rows.pass_cos_sin(rotary, b, cpu, torch.bfloat16, 4)
    assert len(calls) == 7


def test_projection_subclass_and_hooks_are_called_as_modules() -> None:
    """A replaced projection (here a subclass that doubles its output) or a forward hook
    is honoured: the kernel path only takes plain nn.Linear layers."""

    class Doubled(torch.nn.Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * super().forward(x)

    attn = make_attention(ROPE)
    x = torch.randn(3, 24)
    attn_out = torch.randn(3, 6, 8)
    with torch.no_grad():
        plain = attn.output(attn_out)
        doubled = Doubled(48, 24, bias=True)
        doubled.load_state_dict(attn.o_proj.state_dict())
        attn.o_proj = doubled
        assert_matches(attn.output(attn_out), 2 * plain, torch.float32, "subclass")
        seen: list[torch.Tensor] = []
        attn.q_proj.register_forward_hook(lambda mod, inp, out: seen.append(out))
        attn.project(x, torch.arange(3))
    assert len(seen) == 1 and seen[0].shape == (3, 48)
