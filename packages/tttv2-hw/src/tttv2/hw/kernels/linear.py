"""Linear layer: ``x @ weight.T (+ bias)`` with ``weight [out, in]`` (Hugging Face layout).

Up to 16 rows (decode) on x86 CPUs with AVX2: the native kernel of
:mod:`tttv2.hw.kernels.native.skinny_linear`, 1.3-9x faster than the paths below. Where it is not
built (no compiler, another ISA, ``TTTV2_NATIVE_KERNELS=0``), two CPU paths beyond
``F.linear``, both measured on a 2-core AVX2 Zen 4 (torch 2.15):

* one row (decode at batch 1): ``torch.mv``, a matrix-vector product that streams the
  weight once, with no GEMM set-up around it;
* 8 rows and more in bf16/fp16 on a CPU without native half-precision dot products (no
  AVX-512-BF16, AMX or Arm BF16): torch's half GEMM converts element by element and runs
  at ~9 GFLOP/s where fp32 GEMM reaches ~40, so the product is computed in fp32. The
  weight is converted slice by slice into one reused fp32 buffer small enough to stay in
  cache while its slice is multiplied, so the weight is still read once, in its own
  dtype: batched decode (8 rows) runs ~2x faster, a 512-token prefill ~4x. Which CPUs take
  it, and which take torch's own half GEMM (AMX, AVX-512-BF16, Arm BF16), is decided in
  :mod:`tttv2.hw.kernels.half_gemm` (``tttv2-hw`` shows the choice and why).

The result has ``x``'s dtype; half-precision results are fp32 products rounded once, as
torch's own half GEMM accumulates in fp32 too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tttv2.hw.kernels.half_gemm import HALF_DTYPES, half_gemm_choice
from tttv2.hw.kernels.native import records_grad
from tttv2.hw.kernels.native.skinny_linear import (
    SKINNY_MAX_ROWS,
    skinny_linear,
    skinny_linear_applies,
)

#: Rows from which a half-precision product is computed in fp32 on CPUs without native
#: half arithmetic. Below it the gain is small, and torch's half GEMM gives results
#: bit-identical to transformers' (one row is a matrix-vector product, converting as it
#: streams); from 8 rows (batched decode) on the fp32 path is ~2x faster.
UPCAST_MIN_ROWS = 8
#: Size of the reused fp32 buffer holding one converted weight slice (stays in cache).
UPCAST_CHUNK_BYTES = 4 << 20


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x [..., in]``, ``weight [out, in]``, ``bias [out]`` -> ``[..., out]`` (any device)."""
    return F.linear(x, weight, bias)


def cpu_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`linear` for CPU tensors: matrix-vector for one row, fp32 for long half inputs."""
    if x.dim() == 0 or weight.dim() != 2 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: x {tuple(x.shape)} does not fit weight {tuple(weight.shape)} (need x [..., in], weight [out, in])"
        )
    rows = x.numel() // weight.shape[1] if weight.shape[1] else 0
    if torch.compiler.is_compiling():
        if 0 < rows <= SKINNY_MAX_ROWS and not records_grad(
            x, weight, bias
        ):  # decode: the opaque op
            return torch.ops.tttv2_hw.cpu_linear(x, weight, bias)
        return F.linear(x, weight, bias)
    if skinny_linear_applies(x, weight, bias, rows):
        return skinny_linear(x, weight, bias)
    if rows == 1:
        y = torch.mv(weight, x.reshape(-1))
        if bias is not None:
            y = y + bias
        return y.view(*x.shape[:-1], weight.shape[0])
    if (
        rows >= UPCAST_MIN_ROWS
        and x.dtype in HALF_DTYPES
        and not native_half_matmul(x.dtype)
        and not records_grad(x, weight, bias)
    ):
        return upcast_linear(x, weight, bias)
    return F.linear(x, weight, bias)


def upcast_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``F.linear`` computed in fp32 and rounded once to ``x``'s dtype. The weight goes
    through one fp32 buffer of at most :data:`UPCAST_CHUNK_BYTES`, a slice at a time."""
    out_features, in_features = weight.shape
    xf = x.reshape(-1, in_features).float()
    step = min(out_features, max(1, UPCAST_CHUNK_BYTES // (4 * max(in_features, 1))))
    buffer = torch.empty(step, in_features, device=x.device)
    out = torch.empty(xf.shape[0], out_features, device=x.device)
    for start in range(0, out_features, step):
        n = min(step, out_features - start)
        w = buffer[:n]
        w.copy_(weight[start : start + n])
        torch.mm(xf, w.t(), out=out[:, start : start + n])
    if bias is not None:
        out += bias
    return out.to(x.dtype).view(*x.shape[:-1], out_features)


def native_half_matmul(dtype: torch.dtype) -> bool:
    """Whether many-row products in ``dtype`` run torch's own half-precision GEMM (the CPU
    multiplies ``dtype`` natively) rather than the fp32 one: the variant
    :mod:`tttv2.hw.kernels.half_gemm` selects under the detected device's profile, or the
    one forced with ``TTTV2_DEVICE_PROFILE`` (so a forced profile selects the same path on
    every host). fp16 is never native there."""
    return dtype in HALF_DTYPES and half_gemm_choice(dtype).variant.torch_half
