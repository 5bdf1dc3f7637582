"""TokenEmbedding: token ids to hidden states.

::

    h = weight[ids] * scale                    # scale optional (Gemma: sqrt(hidden))
    h = h + position_embedding[positions]      # learned absolute positions (GPT-2), optional

``scale`` is applied as a tensor of the output dtype (``torch.tensor(scale,
dtype=h.dtype)``), as Hugging Face Gemma does, so low-precision results match bit for bit.
Parameters: ``weight [vocab, hidden]`` and, when ``spec.max_positions`` is set,
``position_embedding [max_positions, hidden]``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from tttv2.core.specs import EmbeddingSpec


class TokenEmbedding(torch.nn.Module):
    def __init__(self, spec: EmbeddingSpec, device: Any = None, execution_strategy: Any = None) -> None:
        super().__init__()
        if not isinstance(spec, EmbeddingSpec):
            raise TypeError(f"TokenEmbedding needs an EmbeddingSpec, got {type(spec).__name__}")
        self.spec = spec
        # through torch.nn.init, so tttv2.blocks.weights.no_init_weights can skip the draw
        self.weight = torch.nn.Parameter(
            torch.nn.init.normal_(torch.empty(spec.vocab_size, spec.hidden_dim, device=device), 0.0, 0.02)
        )
        self.position_embedding = (
            torch.nn.Parameter(
                torch.nn.init.normal_(torch.empty(spec.max_positions, spec.hidden_dim, device=device), 0.0, 0.02)
            )
            if spec.max_positions is not None
            else None
        )

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """``input_ids [T]`` int64 (and ``positions [T]`` when the spec has learned
        positions) to ``[T, hidden]``."""
        if input_ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"TokenEmbedding expects integer token ids, got dtype {input_ids.dtype}")
        h = F.embedding(input_ids, self.weight)
        if self.spec.scale is not None:
            h = h * torch.tensor(self.spec.scale, dtype=h.dtype, device=h.device)
        if self.position_embedding is not None:
            if positions is None:
                raise ValueError("TokenEmbedding with learned positions (max_positions set) needs positions")
            h = h + F.embedding(positions, self.position_embedding)
        return h

    def extra_repr(self) -> str:
        s = self.spec
        return f"{s.vocab_size}, {s.hidden_dim}, scale={s.scale}, max_positions={s.max_positions}"
