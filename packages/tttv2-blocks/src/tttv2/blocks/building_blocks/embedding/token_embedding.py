"""TokenEmbedding: token ids to hidden states.

::

    h = weight[ids] * scale                    # scale optional (Gemma: sqrt(hidden))
    h = h + position_embedding[positions]      # learned absolute positions (GPT-2), optional

``scale`` is applied as a tensor of the output dtype (``torch.tensor(scale,
dtype=h.dtype)``), as Hugging Face Gemma does, so low-precision results match bit for bit.
Parameters: ``weight [vocab, hidden]`` and, when ``spec.max_positions`` is set,
``position_embedding [max_positions, hidden]``.

A token id outside ``0 .. vocab_size - 1`` or a learned position outside
``0 .. max_positions - 1`` raises :class:`EmbeddingIndexError` (a ``ValueError``) naming
the argument, the value and the valid range (:meth:`TokenEmbedding.check_inputs`, one
``aminmax`` per checked tensor). On the CPU the check runs only once the lookup has refused
an index (free when every id is valid); on other devices before the lookup. Inside
``torch.compile`` tracing it is left out (it would break the graph);
:class:`~tttv2.blocks.TransformerStack` runs it before its compiled decode step instead.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from tttv2.blocks.building_blocks.embedding.errors import EmbeddingIndexError
from tttv2.core.specs import EmbeddingSpec


class TokenEmbedding(torch.nn.Module):
    def __init__(
        self, spec: EmbeddingSpec, device: Any = None, execution_strategy: Any = None
    ) -> None:
        super().__init__()
        if not isinstance(spec, EmbeddingSpec):
            raise TypeError(f"TokenEmbedding needs an EmbeddingSpec, got {type(spec).__name__}")
        self.spec = spec
        # through torch.nn.init, so tttv2.blocks.weights.no_init_weights can skip the draw
        self.weight = torch.nn.Parameter(
            torch.nn.init.normal_(
                torch.empty(spec.vocab_size, spec.hidden_dim, device=device), 0.0, 0.02
            )
        )
        self.position_embedding = (
            torch.nn.Parameter(
                torch.nn.init.normal_(
                    torch.empty(spec.max_positions, spec.hidden_dim, device=device), 0.0, 0.02
                )
            )
            if spec.max_positions is not None
            else None
        )

    def forward(
        self, input_ids: torch.Tensor, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``input_ids [T]`` int64 (and ``positions [T]`` when the spec has learned
        positions) to ``[T, hidden]``."""
        if input_ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"TokenEmbedding expects integer token ids, got dtype {input_ids.dtype}"
            )
        if self.position_embedding is not None and positions is None:
            raise ValueError(
                "TokenEmbedding with learned positions (max_positions set) needs positions"
            )
        # On the CPU the lookup itself refuses an index outside the table (IndexError) and
        # nothing has been written yet: the range is checked only then, to name the bad
        # entry. Checking first costs a reduction and two reads per pass (~0.08 ms of a
        # decode step whose weights have just streamed through the caches). Elsewhere
        # (a CUDA lookup out of range is a device-side assert) it is checked first.
        compiling = torch.compiler.is_compiling()
        if input_ids.device.type != "cpu" and not compiling:
            self.check_inputs(input_ids, positions)
        try:
            h = F.embedding(input_ids, self.weight)
            learned = (
                F.embedding(positions, self.position_embedding)
                if self.position_embedding is not None and positions is not None  # checked above
                else None
            )
        except IndexError:
            if not compiling:
                self.check_inputs(input_ids, positions)  # raises EmbeddingIndexError
            raise
        if self.spec.scale is not None:
            h = h * torch.tensor(self.spec.scale, dtype=h.dtype, device=h.device)
        if learned is not None:
            h = h + learned
        return h

    def check_inputs(self, input_ids: torch.Tensor, positions: torch.Tensor | None = None) -> None:
        """Raise :class:`EmbeddingIndexError` when a token id (or, with learned positions, a
        position) has no row in its table."""
        _check_range(input_ids, "input_ids", "token id", self.spec.vocab_size, "vocab_size")
        if self.position_embedding is not None and positions is not None:
            _check_range(
                positions,
                "positions",
                "position",
                self.position_embedding.shape[0],
                "max_positions",
            )

    def extra_repr(self) -> str:
        s = self.spec
        return f"{s.vocab_size}, {s.hidden_dim}, scale={s.scale}, max_positions={s.max_positions}"


def _check_range(values: torch.Tensor, argument: str, what: str, size: int, field: str) -> None:
    if values.numel() == 0:
        return
    low, high = (int(v) for v in torch.aminmax(values))
    if high >= size:
        raise EmbeddingIndexError(argument, what, high, size, field)
    if low < 0:
        raise EmbeddingIndexError(argument, what, low, size, field)
