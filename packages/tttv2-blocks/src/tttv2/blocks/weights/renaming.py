"""Mapping checkpoint tensor names onto module parameter names with regex rules, with an
optional per-tensor transform and split."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tttv2.blocks.weights.errors import RenameRuleError
from tttv2.blocks.weights.placement import Derive, Placement, StoredRegion

Rename = Callable[[str], str | None]
Transform = Callable[[torch.Tensor], torch.Tensor]


def transpose(tensor: torch.Tensor) -> torch.Tensor:
    """Swap the last two dimensions (a view): a ``[in, out]`` weight, as GPT-2's ``Conv1D``
    stores it, becomes the ``[out, in]`` of ``nn.Linear``. A rule transform."""
    return tensor.transpose(-2, -1)


@dataclass(frozen=True)
class Split:
    """A rule replacement dividing one checkpoint tensor into several parameters.

    ``targets`` are replacement templates (expanded like a plain replacement, one per
    part, in order); the tensor (after the rule's transform) is cut along ``dim`` into
    ``len(targets)`` equal parts, or into parts of ``sizes`` along ``dim`` when given
    (e.g. grouped-query q/k/v of unequal sizes). A fused ``c_attn.weight`` ``[in, 3 * out]``
    with the transform :func:`transpose` and ``Split([q, k, v], dim=0)`` gives q, k and v
    ``[out, in]``."""

    targets: tuple[str, ...]
    dim: int = 0
    sizes: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        targets = (self.targets,) if isinstance(self.targets, str) else tuple(self.targets)
        if len(targets) < 2 or not all(isinstance(t, str) for t in targets):
            raise RenameRuleError(
                "Split", "targets", self.targets, "two or more replacement strings"
            )
        object.__setattr__(self, "targets", targets)
        if isinstance(self.dim, bool) or not isinstance(self.dim, int):
            raise RenameRuleError("Split", "dim", self.dim, "an integer dimension")
        if self.sizes is not None:
            sizes = tuple(self.sizes)
            if len(sizes) != len(targets) or not all(
                isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes
            ):
                raise RenameRuleError(
                    "Split",
                    "sizes",
                    self.sizes,
                    f"{len(targets)} positive integers (one per target) or None",
                )
            object.__setattr__(self, "sizes", sizes)

    def part(self, index: int, transform: Transform | None = None) -> Derive:
        """From the stored tensor to part ``index`` (after ``transform``)."""
        n, dim, sizes = len(self.targets), self.dim, self.sizes

        def derive(stored: torch.Tensor) -> torch.Tensor:
            whole = stored if transform is None else transform(stored)
            length = whole.shape[dim]
            if sizes is None:
                if length % n:
                    raise ValueError(f"cannot cut dim {dim} of size {length} into {n} equal parts")
                return whole.narrow(dim, index * (length // n), length // n)
            if sum(sizes) != length:
                raise ValueError(f"sizes {list(sizes)} do not add up to dim {dim} of size {length}")
            return whole.narrow(dim, sum(sizes[:index]), sizes[index])

        return derive


class RenameRules:
    """Ordered rules ``(pattern, replacement)`` or ``(pattern, replacement, transform)``;
    the first pattern that matches the *whole* name wins.

    ``replacement`` is expanded like ``re.Match.expand``
    (``r"layers.\\1.attention.q_proj.weight"``); ``None`` means "skip this tensor" (e.g. a
    checkpoint's precomputed ``rotary_emb.inv_freq``); a :class:`Split` divides the tensor
    into several parameters. ``transform`` (a function of the tensor, e.g.
    :func:`transpose`) is applied to the tensor before it is copied (and before a split).
    Given as a mapping, a value is a replacement or a ``(replacement, transform)`` pair.
    Names no rule matches are kept unchanged. ``rules`` holds the ``(compiled pattern,
    replacement)`` pairs and ``transforms`` each rule's transform (or ``None``).

    ``rules(name)`` is the target name (a tuple of names for a split, ``None`` to skip);
    :meth:`placements` also says how each target's tensor is derived, which is what
    :func:`~tttv2.blocks.weights.load_weights` uses. A rule whose transform is this
    module's :func:`transpose` (or none), with or without a :class:`Split`, is also said
    structurally (:attr:`Placement.region <tttv2.blocks.weights.Placement.region>`: a range
    of the stored tensor, maybe transposed), which a sharded loader reads a slice of; any
    other transform is opaque to it.
    """

    def __init__(self, rules: Sequence[tuple[Any, ...]] | Mapping[str, Any]) -> None:
        if isinstance(rules, Mapping):
            items = [(p, *r) if isinstance(r, tuple) else (p, r) for p, r in rules.items()]
        else:
            items = [tuple(rule) for rule in rules]
        self.rules: list[tuple[re.Pattern[str], str | Split | None]] = []
        self.transforms: list[Transform | None] = []  # one per rule, beside it
        for i, rule in enumerate(items):
            if len(rule) not in (2, 3):
                raise RenameRuleError(
                    "RenameRules",
                    f"rules[{i}]",
                    rule,
                    "(pattern, replacement) or (pattern, replacement, transform)",
                )
            pattern, replacement, transform = (*rule, None) if len(rule) == 2 else rule
            try:
                compiled = re.compile(pattern)
            except (re.error, TypeError) as exc:
                raise RenameRuleError(
                    "RenameRules", f"rules[{i}] pattern", pattern, f"a regular expression ({exc})"
                ) from None
            if replacement is not None and not isinstance(replacement, str | Split):
                raise RenameRuleError(
                    "RenameRules",
                    f"rules[{i}] replacement",
                    replacement,
                    "a string, a Split or None (skip)",
                )
            if transform is not None and (replacement is None or not callable(transform)):
                expected = (
                    "None for a skipped tensor"
                    if replacement is None
                    else "a function of a tensor or None"
                )
                raise RenameRuleError("RenameRules", f"rules[{i}] transform", transform, expected)
            self.rules.append((compiled, replacement))
            self.transforms.append(transform)

    def __call__(self, name: str) -> str | tuple[str, ...] | None:
        found = self.placements(name)
        if found is None:
            return None
        targets = tuple(p.target for p in found)
        return targets if len(targets) > 1 else targets[0]

    def placements(self, name: str) -> tuple[Placement, ...] | None:
        """Where the checkpoint tensor ``name`` goes (``None``: skipped on purpose)."""
        for (pattern, replacement), transform in zip(self.rules, self.transforms, strict=True):
            m = pattern.fullmatch(name)
            if not m:
                continue
            if replacement is None:
                return None
            how = _name_of(transform) if transform is not None else ""
            structural = transform is None or transform is transpose
            transposed = transform is transpose
            if isinstance(replacement, Split):
                n, dim = len(replacement.targets), replacement.dim
                return tuple(
                    Placement(
                        m.expand(target),
                        replacement.part(i, transform),
                        ", ".join(filter(None, (how, f"part {i + 1} of {n} along dim {dim}"))),
                        StoredRegion(transposed, dim, i, n, replacement.sizes)
                        if structural
                        else None,
                    )
                    for i, target in enumerate(replacement.targets)
                )
            region = StoredRegion(transposed=True) if transposed else None
            return (Placement(m.expand(replacement), transform, how, region),)
        return (Placement(name),)

    def __repr__(self) -> str:
        rules = [
            (p.pattern, r) if t is None else (p.pattern, r, _name_of(t))
            for (p, r), t in zip(self.rules, self.transforms, strict=True)
        ]
        return f"RenameRules({rules!r})"


def _name_of(transform: Transform) -> str:
    return getattr(transform, "__name__", None) or repr(transform)
