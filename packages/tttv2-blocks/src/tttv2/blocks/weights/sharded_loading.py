"""A rank's shard of a Hugging Face checkpoint, built and loaded through the model's own
rename rules: what :func:`~tttv2.blocks.weights.load_hf_checkpoint` does when it is given a
``mesh`` of more than one rank.

The model's :class:`~tttv2.blocks.weights.RenameRules` (the same rules its plugin uses for
the whole model) become the name mapping of :func:`~tttv2.blocks.parallel.load_shard`: a
rule that renames a tensor maps it; a rule that skips a tensor skips it. A rule that
splits a stored tensor (fused q/k/v or gate/up, a :class:`~tttv2.blocks.weights.Split`)
and/or transposes it (GPT-2's ``Conv1D``, the library's
:func:`~tttv2.blocks.weights.transpose`) says where each part lies in the stored tensor
(:class:`~tttv2.blocks.weights.StoredRegion`), so each rank reads only its rows of each
part. A rule with any other transform (an opaque function of the tensor) is refused by
name when its tensor is met, before it is read. So any model project whose plugin is built
on ``load_hf_checkpoint`` loads sharded without code of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tttv2.blocks.parallel import ShardedTransformerStack, ShardLoadError, load_shard
from tttv2.blocks.weights.construction import default_dtype, no_init_weights
from tttv2.blocks.weights.placement import Placement
from tttv2.blocks.weights.renaming import RenameRules
from tttv2.core.specs import ModelSpec


def shard_rename(rules: RenameRules) -> Callable[[str], str | None]:
    """``rules`` as ``load_shard``'s mapping: checkpoint name -> module name, or None to skip.
    Raises :class:`~tttv2.blocks.parallel.ShardLoadError` for a tensor its rule transforms or
    splits (a single name cannot say which part of the stored tensor a target is: use
    :func:`shard_placements`, which reads those)."""

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


def shard_placements(rules: RenameRules) -> Callable[[str], tuple[Placement, ...] | None]:
    """``rules`` as ``load_shard``'s mapping: checkpoint name -> its placements (a rename,
    or the parts of a split and/or transposed tensor, each a range of the stored tensor),
    or None to skip. Raises :class:`~tttv2.blocks.parallel.ShardLoadError` for a tensor
    whose rule derives it opaquely (a transform other than
    :func:`~tttv2.blocks.weights.transpose`)."""

    def placements(name: str) -> tuple[Placement, ...] | None:
        found = rules.placements(name)
        if found is None:
            return None
        opaque = [p for p in found if not p.is_structural]
        if opaque:
            how = "; ".join(dict.fromkeys(p.how for p in opaque if p.how)) or "a function"
            raise ShardLoadError(
                f"tensor parallel: checkpoint tensor {name!r} is loaded through a rule that "
                f"derives it by {how}, which is not a range of the stored tensor; sharded "
                "loading reads ranges only (renames, Split parts, transpose)"
            )
        return found

    return placements


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
    load_shard(model, files, model.plan.tensors(), shard_placements(rules))
    return model.eval()
