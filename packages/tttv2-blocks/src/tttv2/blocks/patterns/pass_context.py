"""The runtime context of one forward pass, for strategies that select by it.

A strategy that picks its implementation from the runtime context (``DynamicStrategy``:
any strategy with an ``update_context`` method, the hook ``BaseModule.set_mode`` calls)
needs a :class:`~tttv2.core.RuntimeContext` before every pass. :func:`pass_context` builds
it from the batch metadata alone, from Python ints the metadata already holds (no device
reads, no system calls): ``batch_size`` is the number of sequences, ``seq_len`` the longest
sequence (cached plus new tokens), ``num_new_tokens`` the tokens of the pass.
``available_memory`` stays ``None`` (unknown) and ``latency_critical`` ``False``, so rules
on those conditions do not match inside a stack.
"""

from __future__ import annotations

import torch

from tttv2.core import BaseModule, BatchMetadata, RuntimeContext


def pass_context(meta: BatchMetadata) -> RuntimeContext:
    """The :class:`~tttv2.core.RuntimeContext` of the pass ``meta`` describes."""
    return RuntimeContext(
        batch_size=meta.num_seqs, seq_len=meta.max_seq_len, num_new_tokens=meta.num_tokens
    )


def selects_by_context(module: torch.nn.Module) -> bool:
    """Whether the strategy of ``module`` or of any :class:`~tttv2.core.BaseModule` inside
    it selects by the runtime context (has ``update_context``)."""
    return any(
        callable(getattr(m.execution_strategy, "update_context", None))
        for m in module.modules()
        if isinstance(m, BaseModule)
    )
