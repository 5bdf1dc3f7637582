"""RotaryEmbedding: frequencies and attention scaling equal Hugging Face's for every
scaling rule, cos/sin equal HF's rotary classes (including dynamic NTK's growth and
LongRoPE's switch), rotations equal HF's ``apply_rotary_pos_emb`` (half-split, partial),
Meta's complex-number form (interleaved) and the tttv2.testing reference."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LlamaConfig, Phi3Config
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
from transformers.models.phi3.modeling_phi3 import Phi3RotaryEmbedding
from transformers.models.phi3.modeling_phi3 import apply_rotary_pos_emb as hf_apply_partial

from tttv2.blocks import RotaryEmbedding, rope_frequencies
from tttv2.core import ModuleConfig, RopeSpec, create_module
from tttv2.testing.reference.rope import reference_inv_freq, reference_rope


# -- Hugging Face side ---------------------------------------------------------------
def hf_rope_parameters(spec: RopeSpec) -> dict:
    params = {
        "rope_type": spec.scaling,
        "rope_theta": spec.theta,
        "partial_rotary_factor": spec.rotary_dim / spec.head_dim,
    }
    if spec.scaling != "default":
        params["factor"] = spec.factor
    for hf_name, name in [
        ("original_max_position_embeddings", "original_max_position"),
        ("low_freq_factor", "low_freq_factor"),
        ("high_freq_factor", "high_freq_factor"),
        ("beta_fast", "beta_fast"),
        ("beta_slow", "beta_slow"),
        ("attention_factor", "attention_factor"),
        ("mscale", "mscale"),
        ("mscale_all_dim", "mscale_all_dim"),
    ]:
        if getattr(spec, name) is not None:
            params[hf_name] = getattr(spec, name)
    if spec.scaling == "yarn":
        params["truncate"] = spec.truncate
    if spec.scaling == "longrope":
        params["short_factor"] = list(spec.short_factor)
        params["long_factor"] = list(spec.long_factor)
    return params


def hf_config(spec: RopeSpec) -> LlamaConfig:
    return LlamaConfig(
        hidden_size=spec.head_dim * 2,
        num_attention_heads=2,
        head_dim=spec.head_dim,
        max_position_embeddings=spec.max_position,
        rope_parameters=hf_rope_parameters(spec),
    )


def hf_inv_freq(spec: RopeSpec, seq_len: int | None = None) -> tuple[torch.Tensor, float]:
    config = hf_config(spec)
    if spec.scaling == "default":  # Phi-3's default honours partial rotary
        return Phi3RotaryEmbedding.compute_default_rope_parameters(config)
    return ROPE_INIT_FUNCTIONS[spec.scaling](config, None, seq_len=seq_len)


def hf_rotary_module(spec: RopeSpec) -> torch.nn.Module:
    if spec.scaling in ("default", "longrope"):
        params = hf_rope_parameters(spec)
        config = Phi3Config(
            hidden_size=spec.head_dim * 2,
            num_attention_heads=2,
            max_position_embeddings=spec.max_position,
            original_max_position_embeddings=spec.original_max_position or spec.max_position,
            partial_rotary_factor=params.pop("partial_rotary_factor"),
            rope_parameters=params,
        )
        return Phi3RotaryEmbedding(config)
    return LlamaRotaryEmbedding(hf_config(spec))


# -- spec strategies -----------------------------------------------------------------
SPECS = {
    "default": RopeSpec(head_dim=64),
    "partial": RopeSpec(head_dim=64, rotary_dim=32, theta=25000.0),
    "linear": RopeSpec(head_dim=32, scaling="linear", factor=4.0),
    "dynamic": RopeSpec(head_dim=32, scaling="dynamic", factor=2.0, max_position=64),
    "yarn": RopeSpec(
        head_dim=64, scaling="yarn", factor=4.0, original_max_position=256, max_position=1024
    ),
    "yarn_mscale": RopeSpec(
        head_dim=64,
        scaling="yarn",
        factor=40.0,
        original_max_position=4096,
        mscale=0.707,
        mscale_all_dim=0.707,
        beta_fast=16.0,
        beta_slow=2.0,
        truncate=False,
    ),
    "llama3": RopeSpec(
        head_dim=128,
        theta=500000.0,
        scaling="llama3",
        factor=8.0,
        original_max_position=8192,
        low_freq_factor=1.0,
        high_freq_factor=4.0,
        max_position=131072,
    ),
    "longrope": RopeSpec(
        head_dim=16,
        scaling="longrope",
        factor=8.0,
        original_max_position=64,
        max_position=512,
        short_factor=[1.0 + i / 10 for i in range(8)],
        long_factor=[2.0 + i for i in range(8)],
    ),
    "longrope_partial": RopeSpec(
        head_dim=32,
        rotary_dim=16,
        scaling="longrope",
        factor=4.0,
        original_max_position=32,
        max_position=128,
        attention_factor=1.3,
        short_factor=[1.0] * 8,
        long_factor=[1.5 + i for i in range(8)],
    ),
}


@st.composite
def rope_specs(
    draw, scalings=("default", "linear", "dynamic", "yarn", "llama3", "longrope")
) -> RopeSpec:
    head_dim = draw(st.sampled_from([8, 16, 32, 64]))
    rotary_dim = draw(
        st.sampled_from(
            [d for d in (head_dim // 4, head_dim // 2, head_dim) if d % 2 == 0 and d >= 4]
        )
    )
    scaling = draw(st.sampled_from(scalings))
    kw: dict = {
        "head_dim": head_dim,
        "rotary_dim": rotary_dim,
        "theta": draw(st.sampled_from([10000.0, 500000.0, 1e6, 1234.5])),
        "scaling": scaling,
        "interleaved": draw(st.booleans()),
        "max_position": draw(st.sampled_from([64, 128, 512])),
    }
    if scaling != "default":
        kw["factor"] = draw(st.floats(1.0, 32.0))
    if scaling in ("yarn", "llama3", "longrope"):
        kw["original_max_position"] = draw(st.sampled_from([16, 32, 64]))
    if scaling == "llama3":
        kw["low_freq_factor"] = draw(st.floats(0.5, 2.0))
        kw["high_freq_factor"] = kw["low_freq_factor"] + draw(st.floats(0.5, 4.0))
    if scaling == "yarn":
        kw["beta_fast"] = draw(st.none() | st.floats(8.0, 64.0))
        kw["beta_slow"] = draw(st.none() | st.floats(0.5, 2.0))
        kw["truncate"] = draw(st.booleans())
        kw["attention_factor"] = draw(st.none() | st.floats(0.5, 2.0))
        if draw(st.booleans()):
            kw["mscale"], kw["mscale_all_dim"] = (
                draw(st.floats(0.1, 1.0)),
                draw(st.floats(0.1, 1.0)),
            )
    if scaling == "longrope":
        half = rotary_dim // 2
        kw["short_factor"] = draw(st.lists(st.floats(1.0, 4.0), min_size=half, max_size=half))
        kw["long_factor"] = draw(st.lists(st.floats(1.0, 64.0), min_size=half, max_size=half))
        kw["attention_factor"] = draw(st.none() | st.floats(0.5, 2.0))
    return RopeSpec(**kw)


# -- frequencies ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("seq_len", [None, 16, 100, 5000])
def test_frequencies_equal_hugging_face_bit_for_bit(name: str, seq_len: int | None) -> None:
    spec = SPECS[name]
    ours, our_scale = rope_frequencies(spec, seq_len)
    theirs, their_scale = hf_inv_freq(spec, seq_len)
    assert ours.dtype == torch.float32 and ours.shape == (spec.rotary_dim // 2,)
    assert torch.equal(ours, theirs)
    assert our_scale == pytest.approx(their_scale, rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(spec=rope_specs(), seq_len=st.none() | st.integers(1, 4096))
def test_frequencies_equal_hugging_face_and_reference_for_random_specs(
    spec: RopeSpec, seq_len: int | None
) -> None:
    ours, our_scale = rope_frequencies(spec, seq_len)
    theirs, their_scale = hf_inv_freq(spec, seq_len)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=0)
    assert our_scale == pytest.approx(their_scale, rel=1e-12)
    ref, ref_scale = reference_inv_freq(spec, seq_len)
    torch.testing.assert_close(
        ours.double(), torch.tensor(ref, dtype=torch.float64), rtol=2e-6, atol=0
    )
    assert our_scale == pytest.approx(ref_scale, rel=1e-12)


# -- cos/sin against HF's rotary modules -----------------------------------------------
def _hf_cos_sin(
    module: torch.nn.Module, positions: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.zeros(1, dtype=dtype)
    cos, sin = module(x, positions[None])
    half = cos.shape[-1] // 2
    assert torch.equal(cos[0, :, :half], cos[0, :, half:])  # HF duplicates the halves
    return cos[0, :, :half], sin[0, :, :half]


@pytest.mark.parametrize(
    "name", ["default", "partial", "linear", "yarn", "llama3", "longrope", "longrope_partial"]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cos_sin_equal_hugging_face_rotary_module(name: str, dtype: torch.dtype) -> None:
    spec = SPECS[name]
    rope = RotaryEmbedding(spec)
    hf = hf_rotary_module(spec)
    # a short batch, then one that crosses original_max_position (LongRoPE switches tables)
    for length in (5, 40, (spec.original_max_position or 64) + 7):
        positions = torch.arange(length)
        ours = rope.cos_sin(positions, dtype=dtype)
        theirs = _hf_cos_sin(hf, positions, dtype)
        assert ours[0].dtype == dtype
        assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1]), length


def test_dynamic_ntk_follows_hugging_face_as_the_sequence_grows() -> None:
    spec = SPECS["dynamic"]  # max_position 64
    rope, hf = RotaryEmbedding(spec), hf_rotary_module(spec)
    # prefill of 60 tokens, then decode one token at a time past max_position
    steps = [torch.arange(60)] + [torch.tensor([p]) for p in range(60, 75)]
    for positions in steps:
        ours = rope.cos_sin(positions)
        theirs = _hf_cos_sin(hf, positions, torch.float32)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=2e-6)
    # beyond max_position the frequencies really changed
    short = rope.cos_sin(torch.tensor([70]), seq_len=64)
    long = rope.cos_sin(torch.tensor([70]), seq_len=71)
    assert not torch.equal(short[0], long[0])
    # a fresh long prefill in one go equals HF too
    hf = hf_rotary_module(spec)
    positions = torch.arange(100)
    torch.testing.assert_close(
        rope.cos_sin(positions), _hf_cos_sin(hf, positions, torch.float32), rtol=0, atol=2e-6
    )


def test_longrope_switches_tables_at_original_max_position() -> None:
    spec = SPECS["longrope"]  # original 64
    rope = RotaryEmbedding(spec)
    p = torch.tensor([10])
    at_limit = rope.cos_sin(p, seq_len=64)
    past = rope.cos_sin(p, seq_len=65)
    short_freq, scale = rope_frequencies(spec, 64)
    long_freq, _ = rope_frequencies(spec, 65)
    torch.testing.assert_close(at_limit[0], torch.cos(10 * short_freq)[None] * scale)
    torch.testing.assert_close(past[0], torch.cos(10 * long_freq)[None] * scale)
    assert not torch.equal(at_limit[0], past[0])


@pytest.mark.parametrize("name", sorted(SPECS))
def test_cos_sin_into_writes_what_cos_sin_returns(name: str) -> None:
    spec = SPECS[name]
    rope = RotaryEmbedding(spec)
    half = spec.rotary_dim // 2
    # every regime: within the tables, past original_max_position (LongRoPE), past
    # max_position (dynamic NTK computes rows), as many positions as a table has rows
    limit = spec.original_max_position or spec.max_position or 64
    for positions, seq_len in (
        (torch.tensor([7, 3, 9]), 10),
        (torch.tensor([limit + 5, 2]), limit + 6),
        (torch.arange(255, -1, -1), 256),
    ):
        cos_out = torch.full((2 * len(positions), half), float("nan"), dtype=torch.bfloat16)
        sin_out = cos_out.clone()
        rope.cos_sin_into(positions, cos_out[1::2], sin_out[1::2], seq_len)
        cos, sin = rope.cos_sin(positions, dtype=torch.bfloat16, seq_len=seq_len)
        assert torch.equal(cos_out[1::2], cos) and torch.equal(sin_out[1::2], sin), (name, seq_len)
        assert cos_out[0::2].isnan().all() and sin_out[0::2].isnan().all()  # nothing else written
        reference = rope.cos_sin(
            torch.tensor([int(positions[-1])]), dtype=torch.bfloat16, seq_len=seq_len
        )
        assert torch.equal(cos[-1:], reference[0]), (name, seq_len)  # the row of that position


# -- rotation ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["default", "partial", "yarn", "longrope_partial"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_apply_equals_hugging_face_apply_rotary_pos_emb(name: str, dtype: torch.dtype) -> None:
    spec = SPECS[name]
    T, H, Hkv = 9, 4, 2
    q = torch.randn(T, H, spec.head_dim, dtype=dtype)
    k = torch.randn(T, Hkv, spec.head_dim, dtype=dtype)
    positions = torch.tensor([0, 1, 2, 3, 7, 8, 20, 33, 34])
    hf = hf_rotary_module(spec)
    cos, sin = hf(q, positions[None])  # [1, T, R]
    # HF layout is [B, heads, T, D]
    hf_q, hf_k = hf_apply_partial(q.transpose(0, 1)[None], k.transpose(0, 1)[None], cos, sin)
    ours_q, ours_k = RotaryEmbedding(spec).apply(q, k, positions)
    assert ours_q.dtype == dtype
    assert torch.equal(ours_q, hf_q[0].transpose(0, 1))
    assert torch.equal(ours_k, hf_k[0].transpose(0, 1))


def _meta_rotate(x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """Meta's llama reference: pairs (2i, 2i+1) as complex numbers times e^{i p f}."""
    freqs_cis = torch.polar(
        torch.ones(len(positions), len(inv_freq)), positions.float()[:, None] * inv_freq
    )
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(xc * freqs_cis[:, None, :]).flatten(-2).type_as(x)


def test_interleaved_layout_equals_meta_complex_form() -> None:
    spec = RopeSpec(head_dim=32, theta=500000.0, interleaved=True)
    q, k = torch.randn(6, 4, 32), torch.randn(6, 2, 32)
    positions = torch.tensor([0, 5, 6, 7, 100, 1000])
    ours_q, ours_k = RotaryEmbedding(spec).apply(q, k, positions)
    inv_freq, _ = rope_frequencies(spec)
    torch.testing.assert_close(ours_q, _meta_rotate(q, positions, inv_freq), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours_k, _meta_rotate(k, positions, inv_freq), rtol=1e-5, atol=1e-5)


def test_interleaved_is_half_split_on_permuted_channels() -> None:
    base = RopeSpec(head_dim=16, rotary_dim=12)
    inter = base.replace(interleaved=True)
    x = torch.randn(5, 3, 16)
    positions = torch.arange(5) * 3
    # channel order that puts pair (2i, 2i+1) at (i, i + 6); the 4 pass-through channels stay
    perm = torch.tensor([*range(0, 12, 2), *range(1, 12, 2), *range(12, 16)])
    a, _ = RotaryEmbedding(inter).apply(x, x[:, :1], positions)
    b, _ = RotaryEmbedding(base).apply(x[..., perm], x[:, :1, perm], positions)
    torch.testing.assert_close(a[..., perm], b)


@settings(max_examples=40, deadline=None)
@given(
    spec=rope_specs(),
    positions=st.lists(st.integers(0, 600), min_size=1, max_size=12),
    heads=st.sampled_from([(1, 1), (4, 2), (4, 1)]),
    extra_len=st.integers(0, 200),
)
def test_apply_matches_reference(
    spec: RopeSpec, positions: list[int], heads: tuple[int, int], extra_len: int
) -> None:
    pos = torch.tensor(positions)
    seq_len = max(positions) + 1 + extra_len  # another sequence of the batch may be longer
    q = torch.randn(len(positions), heads[0], spec.head_dim)
    k = torch.randn(len(positions), heads[1], spec.head_dim)
    ours_q, ours_k = RotaryEmbedding(spec).apply(q, k, pos, seq_len=seq_len)
    ref_q, ref_k = reference_rope(q, k, pos, spec, seq_len=seq_len)
    # float32 angles p * f carry ~p * 6e-8 absolute error
    tol = 4e-7 * (max(positions) + 1) * 4 + 1e-5
    torch.testing.assert_close(ours_q.double(), ref_q, rtol=0, atol=tol)
    torch.testing.assert_close(ours_k.double(), ref_k, rtol=0, atol=tol)
    # channels beyond rotary_dim pass through unchanged
    assert torch.equal(ours_q[..., spec.rotary_dim :], q[..., spec.rotary_dim :])


# -- tables, errors, registration ------------------------------------------------------
def test_tables_are_built_once_and_shared_per_spec_device_dtype() -> None:
    spec = RopeSpec(head_dim=8, theta=777.0)
    RotaryEmbedding.clear_tables()
    a, b = RotaryEmbedding(spec), RotaryEmbedding(spec)
    t1 = a._table(torch.device("cpu"), torch.float32, "base", 10)
    t2 = b._table(torch.device("cpu"), torch.float32, "base", 100)
    assert t1[0] is t2[0]  # second layer reuses the first layer's table
    t3 = a._table(torch.device("cpu"), torch.bfloat16, "base", 10)
    assert t3[0].dtype == torch.bfloat16 and t3[0] is not t1[0]
    grown = a._table(torch.device("cpu"), torch.float32, "base", 1000)
    assert grown[0].shape[0] == 1024 and torch.equal(grown[0][:256], t1[0])
    # positions beyond the first table size work without seq_len (it is read from positions)
    cos, _ = a.cos_sin(torch.tensor([5000]))
    f, _ = rope_frequencies(spec)
    torch.testing.assert_close(cos[0], torch.cos(5000.0 * f))


def test_bad_shapes_are_reported() -> None:
    rope = RotaryEmbedding(RopeSpec(head_dim=8))
    with pytest.raises(ValueError, match="q must be"):
        rope.apply(torch.randn(3, 2, 6), torch.randn(3, 2, 8), torch.arange(3))
    with pytest.raises(ValueError, match="positions must be"):
        rope.apply(torch.randn(3, 2, 8), torch.randn(3, 2, 8), torch.arange(4))
    with pytest.raises(TypeError, match="RopeSpec"):
        RotaryEmbedding("not a spec")  # type: ignore[arg-type]


def test_create_module_builds_rotary_embedding() -> None:
    module = create_module(ModuleConfig(RopeSpec(head_dim=8)))
    assert isinstance(module, RotaryEmbedding)
    assert math.isclose(rope_frequencies(module.spec)[0][1].item(), 10000 ** (-2 / 8), rel_tol=1e-6)
