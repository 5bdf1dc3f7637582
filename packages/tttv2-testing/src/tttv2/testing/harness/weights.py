"""Random, seeded parameters for blocks under test, so a wrong weight cannot hide.

Default initialisations leave norm weights at one and biases at zero, where a bug such as
a missing bias or a swapped ``(1 + w)`` goes unseen; these helpers make every parameter
non-trivial and reproducible from a seed.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def randomize_parameters(
    module: torch.nn.Module, seed: int = 0, spread: float = 0.5
) -> torch.nn.Module:
    """Fill every parameter from a generator seeded with ``seed``.

    Matrices (``ndim >= 2``) get ``N(0, 1/fan_in)`` (fan-in = last dimension), keeping
    activations of order one; vectors (norm weights, biases) get ``N(0, spread)`` added
    to their current value, so norm weights stay around one and biases around zero.
    Parameters shared between modules (tied embeddings) are filled once."""
    gen = torch.Generator().manual_seed(seed)
    seen: set[int] = set()
    for _, param in sorted(
        module.named_parameters(remove_duplicate=False), key=lambda item: item[0]
    ):
        if id(param) in seen:
            continue
        seen.add(id(param))
        if param.dim() >= 2:
            std = param.shape[-1] ** -0.5
            values = torch.randn(param.shape, generator=gen, dtype=torch.float32) * std
            param.copy_(values.to(param.dtype))
        elif param.dim() == 1:
            noise = torch.randn(param.shape, generator=gen, dtype=torch.float32) * spread
            param.copy_((param.float().cpu() + noise).to(param.dtype))
        else:
            param.copy_(torch.randn((), generator=gen).to(param.dtype))
    return module
