"""Copying a checkpoint's tensors into a module's parameters, one tensor at a time.

Everything is checked against the headers before a single byte is copied: every
checkpoint tensor must land on a parameter (or be skipped on purpose by ``rename``), every
parameter must receive a tensor, and shapes must agree; all problems are reported
together by name. Then each tensor is read, cast into the parameter and dropped, so at
most one checkpoint tensor exists besides the module's own weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from tttv2.blocks.weights.checkpoint import SafetensorsCheckpoint
from tttv2.blocks.weights.errors import WeightMismatchError
from tttv2.blocks.weights.renaming import Rename

# progress(tensor name, bytes loaded so far, total bytes to load)
ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class LoadReport:
    loaded: tuple[str, ...]  # module parameter names that received a tensor
    skipped: tuple[str, ...]  # checkpoint names ``rename`` mapped to None
    nbytes: int  # checkpoint bytes read


def loadable_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and persistent buffer by every name it is reachable under (a tied
    weight appears under each of its names, as the same tensor)."""
    out: dict[str, torch.Tensor] = dict(module.named_parameters(remove_duplicate=False))
    for mod_name, mod in module.named_modules(remove_duplicate=False):
        for buf_name, buf in mod.named_buffers(recurse=False):
            if buf is not None and buf_name not in mod._non_persistent_buffers_set:
                out[f"{mod_name}.{buf_name}" if mod_name else buf_name] = buf
    return out


def plan_load(
    module: torch.nn.Module,
    checkpoint: SafetensorsCheckpoint,
    rename: Rename | Mapping[str, str | None] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """``({checkpoint name: parameter name}, skipped)``, or :class:`WeightMismatchError`
    listing every missing, unexpected and mis-shaped tensor."""
    to_target = _as_callable(rename)
    targets = loadable_tensors(module)
    plan: dict[str, str] = {}
    skipped: list[str] = []
    unexpected: list[str] = []
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    claimed: dict[str, str] = {}
    for name in checkpoint.names:
        target = to_target(name)
        if target is None:
            skipped.append(name)
            continue
        if target not in targets:
            unexpected.append(name if target == name else f"{name} (as {target})")
            continue
        if target in claimed:
            unexpected.append(f"{name} (as {target}, already loaded from {claimed[target]})")
            continue
        claimed[target] = name
        want, got = tuple(targets[target].shape), checkpoint.shape(name)
        if want != got:
            mismatched.append((name, got, want))
        plan[name] = target
    filled = {id(targets[t]) for t in plan.values()}
    missing, seen = [], set()
    for pname, tensor in targets.items():
        if id(tensor) not in filled and id(tensor) not in seen:
            seen.add(id(tensor))
            missing.append(pname)
    if missing or unexpected or mismatched:
        raise WeightMismatchError(
            missing, unexpected, mismatched, source=f"checkpoint {checkpoint.folder}"
        )
    return plan, skipped


@torch.no_grad()
def load_weights(
    module: torch.nn.Module,
    checkpoint: SafetensorsCheckpoint,
    rename: Rename | Mapping[str, str | None] | None = None,
    *,
    dtype: torch.dtype | None = None,
    progress: ProgressCallback | None = None,
) -> LoadReport:
    """Fill ``module``'s parameters from ``checkpoint``.

    ``rename`` maps a checkpoint name to a parameter name (``None``: skip it on purpose);
    see :class:`~tttv2.blocks.weights.RenameRules`. ``dtype`` casts floating-point
    parameters as they are loaded (others keep the dtype they have in the module). Raises
    :class:`WeightMismatchError` before copying anything if the names or shapes disagree.
    """
    plan, skipped = plan_load(module, checkpoint, rename)
    targets = loadable_tensors(module)
    total = sum(checkpoint.tensors[n].nbytes for n in plan)
    done = 0
    for name, target in plan.items():
        source = checkpoint.get(name)
        param = targets[target]
        if dtype is not None and param.is_floating_point() and param.dtype != dtype:
            param.data = torch.empty(param.shape, dtype=dtype, device=param.device)
        param.copy_(source)
        del source
        done += checkpoint.tensors[name].nbytes
        if progress is not None:
            progress(name, done, total)
    return LoadReport(tuple(plan.values()), tuple(skipped), done)


def _as_callable(rename: Rename | Mapping[str, str | None] | None) -> Rename:
    if rename is None:
        return lambda name: name
    if isinstance(rename, Mapping):
        table = dict(rename)
        return lambda name: table.get(name, name)
    return rename
