"""LMHead: hidden states to vocabulary logits.

::

    logits = x @ weight^T (+ bias)
    logits = cap * tanh(logits / cap)          # final_logit_softcap, optional (Gemma 2)

``tied``: ``weight`` *is* the token embedding's ``weight`` Parameter (stored once; both
modules see every update). Untied: its own ``weight [vocab, hidden]`` (and ``bias``).
The product is tttv2-hw's ``linear`` kernel for the input's device (one row, as in
decoding, is a matrix-vector product on CPU).

Weight-only int8 (the ``int8`` precision preset): :meth:`LMHead.quantize_int8` gives the
head its own int8 codes and per-row scales (``int8_weight``, ``int8_scale``); the logits
are then tttv2-hw's ``int8_linear`` kernel (native int8 decode on AVX2 CPUs). A tied
``weight`` stays the embedding's, which keeps its own format: the two are then two copies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from tttv2.core.specs import LMHeadSpec
from tttv2.hw import get_kernel
from tttv2.hw.precision import quantize_int8


class LMHead(torch.nn.Module):
    def __init__(
        self,
        spec: LMHeadSpec,
        embedding: torch.nn.Module | None = None,
        device: Any = None,
        execution_strategy: Any = None,
    ) -> None:
        super().__init__()
        if not isinstance(spec, LMHeadSpec):
            raise TypeError(f"LMHead needs an LMHeadSpec, got {type(spec).__name__}")
        self.spec = spec
        if spec.tied:
            weight = getattr(embedding, "weight", None)
            if not isinstance(weight, torch.nn.Parameter):
                raise ValueError(
                    "LMHead(tied=True) needs embedding=<a TokenEmbedding> whose weight it shares"
                )
            if tuple(weight.shape) != (spec.vocab_size, spec.hidden_dim):
                raise ValueError(
                    f"LMHead(tied=True): embedding weight {tuple(weight.shape)} does not match "
                    f"(vocab_size, hidden_dim) = ({spec.vocab_size}, {spec.hidden_dim})"
                )
            self.weight = weight
        else:
            self.weight = torch.nn.Parameter(
                torch.nn.init.normal_(
                    torch.empty(spec.vocab_size, spec.hidden_dim, device=device), 0.0, 0.02
                )
            )
        self.bias = (
            torch.nn.Parameter(torch.zeros(spec.vocab_size, device=device)) if spec.bias else None
        )
        self.int8_weight: torch.nn.Parameter | None
        self.int8_scale: torch.nn.Parameter | None
        self.register_parameter("int8_weight", None)  # set by quantize_int8()
        self.register_parameter("int8_scale", None)
        self._kernels: dict[str, Callable[..., torch.Tensor]] = {}  # device type -> linear kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, hidden]`` to ``[N, vocab]`` logits, in ``x``'s dtype."""
        if x.shape[-1] != self.spec.hidden_dim:
            raise ValueError(
                f"LMHead(hidden_dim={self.spec.hidden_dim}) got input of shape {tuple(x.shape)}"
            )
        if self.int8_weight is not None:
            logits = self._int8_logits(x)
        else:
            linear = self._kernels.get(x.device.type)
            if linear is None:
                linear = self._kernels[x.device.type] = get_kernel("linear", x.device)
            logits = linear(x, self.weight, self.bias)
        cap = self.spec.final_logit_softcap
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits

    def _int8_logits(self, x: torch.Tensor) -> torch.Tensor:
        key = f"int8:{x.device.type}"
        kernel = self._kernels.get(key)
        if kernel is None:
            kernel = self._kernels[key] = get_kernel("int8_linear", x.device)
        return kernel(x, self.int8_weight, self.int8_scale, self.bias)

    @torch.no_grad()
    def quantize_int8(self) -> None:
        """Compute the logits from int8 codes of ``weight`` (symmetric per output channel,
        :func:`tttv2.hw.precision.quantize_int8`) from now on; ``weight`` itself is left as
        it is (tied: the embedding's). Inference only."""
        q, scale = quantize_int8(self.weight.detach())
        self.int8_weight = torch.nn.Parameter(q, requires_grad=False)
        self.int8_scale = torch.nn.Parameter(scale, requires_grad=False)

    def extra_repr(self) -> str:
        s = self.spec
        return f"{s.hidden_dim} -> {s.vocab_size}, tied={s.tied}, bias={s.bias}, softcap={s.final_logit_softcap}"
