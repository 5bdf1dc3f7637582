"""A rank's shard of a Hugging Face checkpoint, built and loaded through the model's own
rename rules: what :func:`~tttv2.blocks.weights.load_hf_checkpoint` does when it is given a
``mesh`` of more than one rank.

The model's :class:`~tttv2.blocks.weights.RenameRules` (the same rules its plugin uses for
the whole model) become the name mapping of :func:`~tttv2.blocks.parallel.load_shard`: a
rule that renames a tensor maps it; a rule that skips a tensor skips it. A rule that
transposes or splits a stored tensor (fused q/k/v or gate/up, GPT-2's ``Conv1D``) cannot
be read as one slice of the stored tensor yet and is refused by name, before any weight is
read. So any model project whose plugin is built on ``load_hf_checkpoint`` loads sharded
without code of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tttv2.blocks.parallel import ShardedTransformerStack, ShardLoadError, load_shard
from tttv2.blocks.weights.construction import default_dtype, no_init_weights
from tttv2.blocks.weights.renaming import RenameRules
from tttv2.core.specs import ModelSpec


def shard_rename(rules: RenameRules) -> Callable[[str], str | None]:
    """``rules`` as ``load_shard``'s mapping: checkpoint name -> module name, or None to skip.
    Raises :class:`~tttv2.blocks.parallel.ShardLoadError` for a tensor its rule transforms or
    splits (tensor parallelism reads stored tensors as they are)."""

    def rename(name: str) -> str | None:
        placements = rules.placements(name)
        if placements is None:
            return None
        if len(placements) > 1 or placements[0].derive is not None:
            how = "; ".join(p.how for p in placements if p.how) or "a derived tensor"
            raise ShardLoadError(
                f"tensor parallel: checkpoint tensor {name!r} is loaded through a rule that "
                f"transforms or splits it ({how}); sharded loading reads stored tensors as they are"
            )
        return placements[0].target

    return rename


def load_sharded_stack(
    files: list[Path],
    spec: ModelSpec,
    rules: RenameRules,
    mesh: Any,
    *,
    dtype: torch.dtype,
    device: torch.device | str | None,
    execution_strategy: Any = None,
) -> ShardedTransformerStack:
    """Build ``mesh``'s rank of a :class:`ShardedTransformerStack` (head counts that do not
    divide the world size are refused here, before any weight is read) and copy its slices
    of ``files`` into it."""
    with default_dtype(dtype), no_init_weights():
        model = ShardedTransformerStack(spec, mesh, device, execution_strategy)
    load_shard(model, files, model.plan.tensors(), shard_rename(rules))
    return model.eval()
