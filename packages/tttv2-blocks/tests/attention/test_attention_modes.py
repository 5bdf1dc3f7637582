"""Every attention variant in every execution mode equals the naive reference.

Hypothesis draws a spec (MHA/GQA/MQA, free head_dim, biases, qk-norm, sliding window,
soft-cap, custom scale, RoPE), a cache layout (paged with several block sizes, or static)
and a schedule of passes in the mode under test; each sequence's outputs must equal the
reference run over the whole sequence.

The modes that reach the paged-decode kernel also run with tttv2-hw's native CPU kernels
turned off (``TTTV2_NATIVE_KERNELS=0``), so the PyTorch fallback that CUDA, non-AVX2 CPUs
and hosts without a C compiler use is covered too; a spy on the kernel module checks
which of the two ran.
"""

from __future__ import annotations

import importlib
import sys
from collections import Counter
from collections.abc import Iterator

import pytest
import torch
from attention_harness import (
    assert_matches,
    attention_specs,
    make_attention,
    random_inputs,
    reference_outputs,
    run_schedule,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from tttv2.blocks import PagedKVCache, StaticKVCache
from tttv2.core import AttentionSpec, MultiModeStrategy, RopeSpec
from tttv2.hw.kernels.native import NativeKernelUnavailable, build_native

SEQS = (0, 1, 2)
#: The module behind the CPU paged-decode kernel (``tttv2.hw.kernels`` re-exports a
#: function of the same name, which shadows it as an attribute).
paged_kernels = importlib.import_module("tttv2.hw.kernels.paged_decode_attention")


def _lengths(data: st.DataObject, low: int, high: int) -> dict[int, int]:
    if data.draw(st.booleans(), label="equal lengths"):
        n = data.draw(st.integers(low, high))
        return dict.fromkeys(SEQS, n)
    return {s: data.draw(st.integers(low, high)) for s in SEQS}


def _subset(data: st.DataObject) -> list[int]:
    return data.draw(
        st.lists(st.sampled_from(SEQS), min_size=1, max_size=3, unique=True), label="seqs"
    )


def _schedule(mode: str, data: st.DataObject) -> list[tuple[str, dict[int, int]]]:
    if mode == "prefill":  # fresh prompts, sometimes continued on top of their cached prefix
        passes = [("prefill", _lengths(data, 1, 12))]
        if data.draw(st.booleans(), label="continue"):
            passes.append(("prefill", {s: data.draw(st.integers(1, 6)) for s in _subset(data)}))
        return passes
    if mode == "decode":
        steps = data.draw(st.integers(1, 4), label="decode steps")
        return [("prefill", _lengths(data, 1, 8))] + [
            ("decode", dict.fromkeys(_subset(data), 1)) for _ in range(steps)
        ]
    if mode == "unified":  # any mix of new-token counts, cached context growing
        return [
            ("unified", {s: data.draw(st.integers(1, 4)) for s in _subset(data)}) for _ in range(4)
        ]
    if mode == "long_context":  # chunked prefill, then a continued chunked prefill, then decode
        return [
            ("long_context", _lengths(data, 1, 12)),
            ("long_context", {s: data.draw(st.integers(1, 6)) for s in _subset(data)}),
            ("decode", dict.fromkeys(SEQS, 1)),
        ]
    if mode == "speculative":  # verify k drafts per sequence (all accepted here), twice
        k = data.draw(st.integers(1, 4), label="drafts")
        return [
            ("prefill", _lengths(data, 1, 8)),
            ("speculative", dict.fromkeys(SEQS, k + 1)),
            ("speculative", {s: data.draw(st.integers(1, 5)) for s in _subset(data)}),
        ]
    if mode == "continuous_batch":  # sequences join while others decode; a prompt continues
        return [
            ("continuous_batch", {0: data.draw(st.integers(1, 6))}),
            ("continuous_batch", {0: 1, 1: data.draw(st.integers(2, 6))}),
            ("continuous_batch", {1: 1, 2: data.draw(st.integers(1, 6)), 0: 1}),
            ("continuous_batch", {2: data.draw(st.integers(2, 4)), 0: 1, 1: 1}),
            ("continuous_batch", {0: 1, 1: 1, 2: 1}),
        ]
    raise AssertionError(mode)


def _strategy(mode: str, data: st.DataObject) -> object:
    if mode in ("long_context", "speculative"):
        return MultiModeStrategy(chunk_size=data.draw(st.integers(1, 5), label="chunk_size"))
    return {"unified": "unified", "continuous_batch": "continuous_batching"}.get(
        mode, "prefill_decode"
    )


def _cache(spec, data: st.DataObject) -> PagedKVCache:
    layout = data.draw(
        st.sampled_from(["paged-1", "paged-3", "paged-4", "paged-16", "static"]), label="layout"
    )
    if layout == "static":
        return StaticKVCache(
            [spec], max_batch=len(SEQS), max_seq_len=spec.max_seq_len, dtype=torch.float32
        )
    block = int(layout.split("-")[1])
    return PagedKVCache.for_specs(
        [spec],
        num_blocks=-(-spec.max_seq_len // block) * len(SEQS),
        block_size=block,
        dtype=torch.float32,
    )


@pytest.mark.parametrize(
    "mode", ["prefill", "decode", "unified", "long_context", "speculative", "continuous_batch"]
)
@settings(max_examples=10, deadline=None)
@given(spec=attention_specs(), data=st.data())
def test_mode_matches_reference(mode: str, spec, data: st.DataObject) -> None:
    schedule = _schedule(mode, data)
    attn = make_attention(
        spec, _strategy(mode, data), seed=data.draw(st.integers(0, 99), label="seed")
    )
    cache = _cache(spec, data)
    totals = {s: sum(step.get(s, 0) for _, step in schedule) for s in SEQS}
    xs = random_inputs(spec, {s: n for s, n in totals.items() if n})
    got = run_schedule(attn, cache, cache.block_manager(spec.max_seq_len), xs, schedule)
    want = reference_outputs(attn, xs)
    for s in xs:
        assert_matches(got[s], want[s], what=f"{mode} sequence {s}")


# -- every variant in every mode, deterministically (hypothesis above explores mixes) ----
def _variant(**fields) -> AttentionSpec:
    base = {"hidden_dim": 24, "num_heads": 4, "max_seq_len": 64}
    return AttentionSpec(**{**base, **fields})


VARIANTS = {
    "mha": _variant(),
    "gqa": _variant(num_heads=6, num_kv_heads=2),
    "mqa": _variant(num_kv_heads=1),
    "bias": _variant(qkv_bias=True, out_bias=True),
    "qk_norm": _variant(qk_norm=True, qk_norm_eps=1e-5),
    "sliding_window": _variant(sliding_window=3),
    "softcap": _variant(logit_softcap=1.5),
    "scale": _variant(scale=0.9),
    "head_dim": _variant(head_dim=10),
    "rope": _variant(rope=RopeSpec(head_dim=6, theta=100.0)),
    "rope_partial_interleaved": _variant(rope=RopeSpec(head_dim=6, rotary_dim=4, interleaved=True)),
}

FIXED = {
    "prefill": [("prefill", {0: 7, 1: 3, 2: 7}), ("prefill", {1: 4, 2: 2})],
    "decode": [("prefill", {0: 7, 1: 3, 2: 5})] + [("decode", {0: 1, 1: 1, 2: 1})] * 3,
    "unified": [
        ("unified", {0: 7, 1: 1}),
        ("unified", {0: 1, 1: 4, 2: 6}),
        ("unified", {2: 1, 0: 2}),
    ],
    "long_context": [
        ("long_context", {0: 11, 1: 3}),
        ("long_context", {0: 5, 2: 4}),
        ("decode", {0: 1, 1: 1, 2: 1}),
    ],
    "speculative": [
        ("prefill", {0: 6, 1: 2, 2: 4}),
        ("speculative", {0: 4, 1: 4, 2: 4}),
        ("speculative", {0: 2, 2: 3}),
    ],
    "continuous_batch": [
        ("continuous_batch", {0: 6}),
        ("continuous_batch", {0: 1, 1: 5}),
        ("continuous_batch", {1: 1, 2: 4, 0: 1}),
        ("continuous_batch", {2: 3, 0: 1, 1: 1}),
    ],
}
STRATEGIES = {
    "prefill": "prefill_decode",
    "decode": "prefill_decode",
    "unified": "unified",
    "long_context": MultiModeStrategy(chunk_size=4),
    "speculative": MultiModeStrategy(chunk_size=4),
    "continuous_batch": "continuous_batching",
}


#: Modes whose schedule reaches the paged-decode kernel (long_context ends with a decode).
PAGED_MODES = ("decode", "long_context", "continuous_batch")
MODES_AND_KERNELS = [(m, "native") for m in FIXED] + [(m, "torch") for m in PAGED_MODES]


def _forget_native_kernels() -> None:
    """tttv2-hw looks each native kernel up once per process (``TTTV2_NATIVE_KERNELS`` is
    read then) and caches the function or the reason there is none: forget those."""
    for name, module in list(sys.modules.items()):
        if name.startswith("tttv2.hw.kernels"):
            for obj in list(vars(module).values()):
                if (
                    callable(getattr(obj, "cache_clear", None))
                    and getattr(obj, "__module__", None) == name
                ):
                    obj.cache_clear()


@pytest.fixture
def paged_kernel_calls(request, monkeypatch) -> Iterator[Counter]:
    """Native kernels on or off per the test's ``kernels`` parameter; counts the calls of
    the native and the PyTorch paged-decode kernels behind the CPU entry point."""
    native_off = request.node.callspec.params["kernels"] == "torch"
    if native_off:
        monkeypatch.setenv("TTTV2_NATIVE_KERNELS", "0")
        _forget_native_kernels()
    calls: Counter = Counter()
    for name, kind in (
        ("native_paged_decode_attention", "native"),
        ("paged_decode_attention", "torch"),
    ):
        kernel = getattr(paged_kernels, name)
        monkeypatch.setattr(
            paged_kernels,
            name,
            lambda *a, _k=kernel, _kind=kind, **kw: calls.update([_kind]) or _k(*a, **kw),
        )
    yield calls
    if native_off:
        monkeypatch.undo()  # the variable restored first, so the next lookups see it
        _forget_native_kernels()


def _native_paged_decode_builds() -> bool:
    try:
        build_native("paged_decode_attention")
    except NativeKernelUnavailable:
        return False
    return True


@pytest.mark.parametrize(("mode", "kernels"), MODES_AND_KERNELS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_in_every_mode(
    variant: str, mode: str, kernels: str, paged_kernel_calls
) -> None:
    spec = VARIANTS[variant]
    attn = make_attention(spec, STRATEGIES[mode])
    cache = PagedKVCache.for_specs([spec], num_blocks=48, block_size=3, dtype=torch.float32)
    schedule = FIXED[mode]
    xs = random_inputs(spec, {s: sum(step.get(s, 0) for _, step in schedule) for s in SEQS})
    got = run_schedule(attn, cache, cache.block_manager(64), xs, schedule)
    want = reference_outputs(attn, xs)
    for s in SEQS:
        assert_matches(got[s], want[s], what=f"{variant} / {mode} / {kernels} / sequence {s}")
    if mode in PAGED_MODES:
        ran = "native" if kernels == "native" and _native_paged_decode_builds() else "torch"
        other = "torch" if ran == "native" else "native"
        assert paged_kernel_calls[ran] > 0 and paged_kernel_calls[other] == 0, dict(
            paged_kernel_calls
        )
