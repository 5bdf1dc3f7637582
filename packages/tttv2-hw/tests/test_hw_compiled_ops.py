"""Under torch.compile the CPU kernels become the ``tttv2_hw::`` custom ops: traced through
their fake implementations (aot_eager runs AOT autograd's tracing without inductor's
compile time) and equal to the eager kernels."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo.testing
from test_hw_kernels_attention import _paged_setup

from tttv2.hw.kernels.linear import cpu_linear
from tttv2.hw.kernels.paged_decode_attention import cpu_paged_decode_attention
from tttv2.hw.kernels.rms_norm import cpu_rms_norm


def _step(x, w, n, q, kp, vp, tables, lens):
    h = cpu_linear(cpu_rms_norm(x, n, 1e-5, unit_offset=True), w)
    attn = cpu_paged_decode_attention(
        q, kp, vp, tables, lens, scale=0.3, sliding_window=6, softcap=4.0
    )
    return torch.nn.functional.silu(h) * 2, attn * 3


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_compiled_kernels_equal_eager(dtype):
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(0)
    x, w, n = (torch.randn(*s, generator=g).to(dtype) for s in ((2, 32), (24, 32), (32,)))
    q, kp, vp, tables, lens = _paged_setup((9, 4), 4, 2, 8, 4)
    args = (x, w, n, q.to(dtype), kp.to(dtype), vp.to(dtype), tables, lens)
    ops_seen = []
    counting = torch._dynamo.testing.CompileCounterWithBackend("aot_eager")
    with torch.no_grad():
        want = _step(*args)
        got = torch.compile(_step, backend=counting, fullgraph=True)(*args)
    for node in counting.graphs[0].graph.nodes:
        if node.op == "call_function" and "tttv2_hw" in str(node.target):
            ops_seen.append(str(node.target))
    assert sorted(ops_seen) == [
        "tttv2_hw.cpu_linear",
        "tttv2_hw.cpu_paged_decode_attention",
        "tttv2_hw.cpu_rms_norm",
    ]
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)
