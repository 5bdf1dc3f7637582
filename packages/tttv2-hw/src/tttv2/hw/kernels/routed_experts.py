"""The ``routed_experts`` kernel op: the chosen experts of a mixture-of-experts layer.

``kernel(x, rows, weights, counts, experts, activation)`` computes, for ``x [T, hidden]``
and the ``A`` (token, expert) assignments sorted by expert, grouped into
``len(experts) == len(counts)`` groups (one per chosen expert, ascending expert id)::

    out = zeros_like(x)
    for each group g, its assignments a (rows[a] the token, weights[a] the float32 weight):
        gate, up, down = experts[g]            # [inter, hidden], [inter, hidden], [hidden, inter]
        y = (down @ (act(gate @ x[rows[a]]) * (up @ x[rows[a]]))) * weights[a]
        out[rows[a]] += y.to(x.dtype)

in ``x``'s dtype, rounded as the eager operations round, with ``act`` a gated activation
by its ``FeedForwardSpec`` name. It returns ``None`` when it does not serve the call (a
backend without one, a dtype, an activation, too many rows per expert, autograd
recording): the caller then runs the experts itself. The generic ``torch`` backend's kernel
always returns ``None``; ``torch-cpu`` registers the native one
(:mod:`tttv2.hw.kernels.native.routed_experts`) for 1-16 rows per expert (decode).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

SIGNATURE = (
    "(x [T,hidden], rows [A] int64, weights [A] float32, counts [groups], "
    "experts [(gate [I,hidden], up [I,hidden], down [hidden,I])] per group, activation) -> [T,hidden] | None"
)


def no_routed_experts(
    x: torch.Tensor,
    rows: torch.Tensor,
    weights: torch.Tensor,
    counts: Sequence[int],
    experts: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    activation: str,
) -> None:
    """The generic backend's ``routed_experts``: never serves (blocks run the experts)."""
    return None
