"""The protocol the runtime uses to talk to a model, and nothing more.

A model is anything with ``forward(input_ids [T], meta, cache) -> logits [N, vocab]``
(``N == len(meta.logits_indices)``) and ``new_cache(num_blocks, block_size, dtype=None)``.
Optionally it has ``set_mode(mode)`` (called before a pass whose ``meta.mode`` differs from
the model's current mode) and ``supported_modes()`` (without it the runtime assumes the
model computes the same thing in every mode, as the BatchMetadata contract requires).
``tttv2.blocks.TransformerStack`` satisfies this protocol; so does any plain torch module
that honours :class:`~tttv2.core.batch.BatchMetadata`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from tttv2.core.batch import BatchMetadata
from tttv2.core.modes import ExecutionMode


@runtime_checkable
class CausalLM(Protocol):
    """A causal language model over a paged KV cache."""

    def forward(self, input_ids: torch.Tensor, meta: BatchMetadata, cache: Any) -> torch.Tensor:
        """Logits ``[len(meta.logits_indices), vocab]`` for the flattened tokens ``input_ids [T]``;
        writes the new tokens' keys and values into ``cache`` at ``meta.slot_mapping``."""
        ...

    def new_cache(self, num_blocks: int, block_size: int, dtype: torch.dtype | None = None) -> Any:
        """A KV cache of ``num_blocks`` blocks of ``block_size`` tokens per layer."""
        ...


@runtime_checkable
class SupportsModes(Protocol):
    """A model whose execution mode is switched explicitly (``tttv2.core.BaseModule``)."""

    def set_mode(self, mode: ExecutionMode) -> None: ...

    def supported_modes(self) -> tuple[ExecutionMode, ...]: ...


def check_causal_lm(model: object, role: str = "model") -> None:
    """Raise ``TypeError`` naming what is missing when ``model`` is not a :class:`CausalLM`."""
    missing = [
        name for name in ("forward", "new_cache") if not callable(getattr(model, name, None))
    ]
    if missing:
        raise TypeError(
            f"{role} {type(model).__name__} is not a CausalLM: it has no {' / '.join(missing)}() "
            "(needs forward(input_ids, meta, cache) and new_cache(num_blocks, block_size, dtype=None))"
        )


def declared_modes(model: object) -> frozenset[ExecutionMode] | None:
    """The modes ``model.supported_modes()`` lists, or ``None`` when it declares none."""
    fn = getattr(model, "supported_modes", None)
    if not callable(fn):
        return None
    return frozenset(ExecutionMode(m) for m in fn())


def switch_mode(model: object, mode: ExecutionMode, last: ExecutionMode | None = None) -> None:
    """``model.set_mode(mode)`` unless the model has no ``set_mode`` or is already in
    ``mode`` (its ``current_mode`` when it has one, else ``last``, the mode of the
    previous pass)."""
    set_mode = getattr(model, "set_mode", None)
    if set_mode is not None and getattr(model, "current_mode", last) is not mode:
        set_mode(mode)


def call_model(
    model: Any, input_ids: torch.Tensor, meta: BatchMetadata, cache: Any
) -> torch.Tensor:
    """Run one pass; through ``__call__`` for torch modules so their hooks run."""
    fn = model if isinstance(model, torch.nn.Module) else model.forward
    return fn(input_ids, meta, cache)
