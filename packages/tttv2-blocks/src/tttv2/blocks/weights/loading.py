"""Copying a checkpoint's tensors into a module's parameters, one tensor at a time.

Everything is checked against the headers before a single byte is copied: every
checkpoint tensor must land on a parameter (or be skipped on purpose by ``rename``), every
parameter must receive a tensor, and shapes must agree; all problems are reported
together by name. A :class:`~tttv2.blocks.weights.RenameRules` rule may also transform a
tensor (e.g. transpose it) or split it into several parameters; shapes are then checked
after the transform and split (computed on the meta device, from the header alone), and
problems name the checkpoint tensor, which part and the parameter. Then each tensor is
read, transformed, cast into its parameter(s) and dropped, so at most one checkpoint
tensor (and what its transform allocates, nothing for a transpose or a split) exists
besides the module's own weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from tttv2.blocks.weights.checkpoint import SafetensorsCheckpoint
from tttv2.blocks.weights.errors import NonFiniteWeightError, WeightMismatchError
from tttv2.blocks.weights.placement import Placement
from tttv2.blocks.weights.renaming import Rename, RenameRules

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
    listing every missing, unexpected and mis-shaped tensor. A tensor a
    :class:`~tttv2.blocks.weights.Split` divides appears once per part, as ``"name[i]"``
    (part ``i``, from 0)."""
    plan, skipped = _plan(module, checkpoint, rename)
    flat: dict[str, str] = {}
    for name, placements in plan.items():
        if len(placements) == 1:
            flat[name] = placements[0].target
        else:
            flat |= {f"{name}[{i}]": p.target for i, p in enumerate(placements)}
    return flat, skipped


def _plan(
    module: torch.nn.Module,
    checkpoint: SafetensorsCheckpoint,
    rename: Rename | Mapping[str, str | None] | None,
) -> tuple[dict[str, tuple[Placement, ...]], list[str]]:
    """``({checkpoint name: its placements}, skipped)``, or :class:`WeightMismatchError`."""
    place = _as_placer(rename)
    targets = loadable_tensors(module)
    plan: dict[str, tuple[Placement, ...]] = {}
    skipped: list[str] = []
    unexpected: list[str] = []
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    claimed: dict[str, str] = {}
    for name in checkpoint.names:
        placements = place(name)
        if placements is None:
            skipped.append(name)
            continue
        kept = []
        for p in placements:
            how = f"{p.how}, " if p.how else ""
            if p.target not in targets:
                unexpected.append(
                    name if p.target == name and not how else f"{name} ({how}as {p.target})"
                )
                continue
            if p.target in claimed:
                unexpected.append(
                    f"{name} ({how}as {p.target}, already loaded from {claimed[p.target]})"
                )
                continue
            claimed[p.target] = name
            want = tuple(targets[p.target].shape)
            info = checkpoint.tensors[name]
            label = f"{name} ({how}as {p.target})" if p.derive is not None else name
            try:
                got = p.shape(info.shape, info.dtype)
            except (
                RuntimeError,
                ValueError,
                IndexError,
            ) as exc:  # a transform or split that cannot apply
                mismatched.append((f"{label}: {exc}", info.shape, want))
                continue
            if want != got:
                mismatched.append((label, got, want))
            kept.append(p)
        if kept:
            plan[name] = tuple(kept)
    filled = {
        id(targets[t]) for t in claimed
    }  # mis-shaped ones are reported as such, not as missing
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
    check_finite: bool = False,
) -> LoadReport:
    """Fill ``module``'s parameters from ``checkpoint``.

    ``rename`` maps a checkpoint name to a parameter name (``None``: skip it on purpose);
    see :class:`~tttv2.blocks.weights.RenameRules`, whose rules may also transform a tensor
    or split it into several parameters. ``dtype`` casts floating-point
    parameters as they are loaded (others keep the dtype they have in the module). Raises
    :class:`WeightMismatchError` before copying anything if the names or shapes disagree.
    ``check_finite``: raise :class:`NonFiniteWeightError` naming the first tensor holding
    NaN or infinity, checked on each tensor as it is read (one pass over data already in
    memory; the module is then partly loaded and should be dropped).
    When the detected device's model parameters name a precision preset (the ``tt:*``
    profiles do), the loaded weights are then held in its formats
    (:func:`~tttv2.blocks.weights.precision.apply_device_precision`).
    """
    plan, skipped = _plan(module, checkpoint, rename)
    targets = loadable_tensors(module)
    total = sum(checkpoint.tensors[n].nbytes for n in plan)
    done = 0
    loaded: list[str] = []
    for name, placements in plan.items():
        source = checkpoint.get(name)
        if check_finite and source.is_floating_point():
            _require_finite(name, source, checkpoint)
        for placement in placements:
            param = targets[placement.target]
            if dtype is not None and param.is_floating_point() and param.dtype != dtype:
                param.data = torch.empty(param.shape, dtype=dtype, device=param.device)
            param.copy_(placement.tensor(source))
            loaded.append(placement.target)
        del source
        done += checkpoint.tensors[name].nbytes
        if progress is not None:
            progress(name, done, total)
    from tttv2.blocks.weights.precision import apply_device_precision  # noqa: PLC0415

    apply_device_precision(module)  # the device's precision preset (tt:* profiles), if any
    return LoadReport(tuple(loaded), tuple(skipped), done)


def _require_finite(name: str, tensor: torch.Tensor, checkpoint: SafetensorsCheckpoint) -> None:
    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        bad = tensor[~finite]
        nan = int(bad.isnan().sum())
        raise NonFiniteWeightError(
            f"checkpoint {checkpoint.folder}: tensor {name!r} holds {nan} NaN and "
            f"{bad.numel() - nan} infinite value(s) of {tensor.numel()} (load with "
            "allow_nonfinite_weights=True, or --allow-nonfinite-weights, to load it anyway)"
        )


def _as_placer(
    rename: Rename | Mapping[str, str | None] | None,
) -> Callable[[str], tuple[Placement, ...] | None]:
    placements = getattr(rename, "placements", None)
    if isinstance(rename, RenameRules) and callable(placements):
        return placements
    to_target = _as_callable(rename)

    def place(name: str) -> tuple[Placement, ...] | None:
        target = to_target(name)
        return None if target is None else (Placement(target),)

    return place


def _as_callable(rename: Rename | Mapping[str, str | None] | None) -> Rename:
    if rename is None:
        return lambda name: name
    if isinstance(rename, Mapping):
        table = dict(rename)
        return lambda name: table.get(name, name)
    return rename
