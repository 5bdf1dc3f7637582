"""The CPU kernels as torch custom ops, so ``torch.compile`` keeps them.

A compiled graph cannot trace into a ctypes call, so under ``torch.compile`` the decode
paths of ``cpu_linear``, ``cpu_rms_norm`` and ``cpu_paged_decode_attention`` call these
ops instead: inductor treats each as one opaque kernel (its output shape comes from the
fake implementation) and fuses the elementwise work around them, and at run time the op
runs the eager function, which picks the native kernel or PyTorch as in eager mode.

(No ``from __future__ import annotations`` here: ``custom_op`` reads the annotations.)
"""

import torch


@torch.library.custom_op("tttv2_hw::cpu_linear", mutates_args=())
def cpu_linear_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    from tttv2.hw.kernels.linear import cpu_linear

    return cpu_linear(x, weight, bias)


@cpu_linear_op.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


@torch.library.custom_op("tttv2_hw::cpu_rms_norm", mutates_args=())
def cpu_rms_norm_op(
    x: torch.Tensor, weight: torch.Tensor, eps: float, unit_offset: bool
) -> torch.Tensor:
    from tttv2.hw.kernels.rms_norm import cpu_rms_norm

    return cpu_rms_norm(x, weight, eps, unit_offset=unit_offset)


@cpu_rms_norm_op.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, eps: float, unit_offset: bool) -> torch.Tensor:
    return torch.empty_like(x)


@torch.library.custom_op("tttv2_hw::cpu_paged_decode_attention", mutates_args=())
def cpu_paged_decode_attention_op(
    q: torch.Tensor,
    k_pool: torch.Tensor,
    v_pool: torch.Tensor,
    block_tables: torch.Tensor,
    seq_lens: torch.Tensor,
    scale: float,
    sliding_window: int | None,
    softcap: float | None,
) -> torch.Tensor:
    from tttv2.hw.kernels.paged_decode_attention import cpu_paged_decode_attention

    return cpu_paged_decode_attention(
        q,
        k_pool,
        v_pool,
        block_tables,
        seq_lens,
        scale=scale,
        sliding_window=sliding_window,
        softcap=softcap,
    )


@cpu_paged_decode_attention_op.register_fake
def _(
    q: torch.Tensor,
    k_pool: torch.Tensor,
    v_pool: torch.Tensor,
    block_tables: torch.Tensor,
    seq_lens: torch.Tensor,
    scale: float,
    sliding_window: int | None,
    softcap: float | None,
) -> torch.Tensor:
    return torch.empty_like(q)
