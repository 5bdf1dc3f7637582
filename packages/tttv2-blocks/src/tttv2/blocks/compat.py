"""Migration shim for code written against the seed's attention API.

``BackwardCompatibleAttention(hidden_dim, num_heads)`` builds the attention spec from the
old constructor arguments and accepts the old call style
``attn(x, meta, cache, mode="prefill")``; the mode string switches the execution mode
first. It warns once (``DeprecationWarning``); new code builds
``Attention(AttentionSpec(...))`` and calls ``prefill_forward``/``decode_forward``.
"""

from __future__ import annotations

import torch

from tttv2.blocks.building_blocks.attention import Attention
from tttv2.core import AttentionSpec, LegacyModeCall, PrefillDecodeStrategy


class BackwardCompatibleAttention(LegacyModeCall, Attention):
    def __init__(
        self, hidden_dim: int, num_heads: int, device: torch.device | str | None = None
    ) -> None:
        super().__init__(
            AttentionSpec(hidden_dim=hidden_dim, num_heads=num_heads),
            device,
            PrefillDecodeStrategy(),
        )


__all__ = ["BackwardCompatibleAttention"]
