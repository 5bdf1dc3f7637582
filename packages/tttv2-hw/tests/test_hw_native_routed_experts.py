"""The ``routed_experts`` kernel: the native CPU one against the experts computed op by op
in float64 (and rounded as the eager block rounds), and when each backend declines."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hw_close import assert_close

from tttv2.hw import get_kernel
from tttv2.hw.kernels.native import NativeKernelUnavailable
from tttv2.hw.kernels.native.routed_experts import native_routed_experts, routed_experts_kernel
from tttv2.hw.kernels.routed_experts import no_routed_experts

built = routed_experts_kernel()
needs_kernel = pytest.mark.skipif(
    isinstance(built, NativeKernelUnavailable), reason=f"native kernel not built here: {built}"
)
HIDDEN, INTER, EXPERTS = 72, 44, 6  # not multiples of 8: the scalar tails run too
ACT = {"silu": F.silu, "gelu_tanh": lambda t: F.gelu(t, approximate="tanh")}
TOLERANCE = {torch.float32: (1e-5, 1e-5), torch.bfloat16: (3e-2, 2e-2), torch.float16: (3e-3, 3e-3)}


def _case(tokens: int, top_k: int, dtype: torch.dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, HIDDEN, generator=g).to(dtype)
    weights = [
        (torch.randn(INTER, HIDDEN, generator=g) / HIDDEN**0.5, torch.randn(INTER, HIDDEN, generator=g) / HIDDEN**0.5,
         torch.randn(HIDDEN, INTER, generator=g) / INTER**0.5)
        for _ in range(EXPERTS)
    ]  # fmt: skip
    weights = [tuple(w.to(dtype) for w in e) for e in weights]
    chosen = torch.stack([torch.randperm(EXPERTS, generator=g)[:top_k] for _ in range(tokens)])
    route = torch.rand(tokens, top_k, generator=g)
    flat = chosen.reshape(-1)
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=EXPERTS).tolist()
    used = [e for e in range(EXPERTS) if counts[e]]
    return (
        x,
        order // top_k,
        route.reshape(-1)[order],
        [counts[e] for e in used],
        [weights[e] for e in used],
    )


def _reference(x, rows, route, counts, experts, activation):
    """Float64 products; the eager block's roundings to the dtype between them."""
    dt, out, start = x.dtype, torch.zeros(x.shape, dtype=torch.float64), 0
    for count, (gate, up, down) in zip(counts, experts, strict=True):
        r = rows[start : start + count]
        xs = x[r].double()
        g, u = (xs @ gate.double().T).to(dt), (xs @ up.double().T).to(dt)
        a = (ACT[activation](g.float()).to(dt).double() * u.double()).to(dt)
        y = (
            (a.double() @ down.double().T).to(dt).double()
            * route[start : start + count, None].double()
        ).to(dt)
        out.index_add_(0, r, y.double())
        start += count
    return out


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("activation", ["silu", "gelu_tanh"])
@pytest.mark.parametrize(("tokens", "top_k"), [(1, 2), (1, 6), (3, 2), (8, 4), (16, 1)])
def test_native_routed_experts_match_reference(dtype, activation, tokens, top_k):
    x, rows, route, counts, experts = _case(tokens, top_k, dtype)
    out = native_routed_experts(x, rows, route, counts, experts, activation)
    assert out is not None and out.dtype == dtype and out.shape == x.shape
    atol, rtol = TOLERANCE[dtype]
    assert_close(out, _reference(x, rows, route, counts, experts, activation), atol=atol, rtol=rtol)


@needs_kernel
def test_native_routed_experts_declines_what_it_does_not_serve():
    x, rows, route, counts, experts = _case(3, 2, torch.bfloat16)
    assert native_routed_experts(x, rows, route, counts, experts, "relu") is None  # activation
    mixed = [(g.float(), u, d) for g, u, d in experts]
    assert native_routed_experts(x, rows, route, counts, mixed, "silu") is None  # dtype
    big = _case(40, 6, torch.float32)  # 40 tokens on 6 experts: more than 16 rows per expert
    assert native_routed_experts(*big, "silu") is None
    grad = [(g.float().requires_grad_(), u.float(), d.float()) for g, u, d in experts]
    assert (
        native_routed_experts(x.float(), rows, route, counts, grad, "silu") is None
    )  # autograd records


def test_registry_serves_routed_experts_per_device():
    assert get_kernel("routed_experts", "cpu") is native_routed_experts
    assert get_kernel("routed_experts", "meta") is no_routed_experts
    x, rows, route, counts, experts = _case(2, 2, torch.float32)
    assert no_routed_experts(x, rows, route, counts, experts, "silu") is None


@pytest.fixture
def omp_threads():
    """Sets the kernel's thread count (torch's OpenMP threads) for one test, then restores it."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@needs_kernel
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize(
    ("tokens", "top_k"),
    [(1, EXPERTS), (16, EXPERTS), (13, 3)],  # every expert chosen; 16 rows on every expert
)
def test_native_routed_experts_any_thread_count(omp_threads, threads, dtype, tokens, top_k):
    """One parallel region splits gate/up by (expert, row chunk) and down by hidden-row chunk
    over every expert: with 2-3 threads the chunks (multiples of 12 rows) cut the 44 and 72
    rows mid-vector, and the experts share tokens; the sums match the reference and, bit
    for bit, the single-thread result (each output summed in one order whatever the split)."""
    case = _case(tokens, top_k, dtype, seed=tokens)
    omp_threads(1)
    single = native_routed_experts(*case, "silu")
    omp_threads(threads)
    out = native_routed_experts(*case, "silu")
    assert out is not None and single is not None
    atol, rtol = TOLERANCE[dtype]
    assert_close(out, _reference(*case, "silu"), atol=atol, rtol=rtol)
    assert torch.equal(out, single)
