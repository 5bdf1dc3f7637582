"""Mapping checkpoint tensor names onto module parameter names with regex rules."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

Rename = Callable[[str], str | None]


class RenameRules:
    """Ordered ``(pattern, replacement)`` rules; the first pattern that matches the
    *whole* name wins and ``replacement`` is expanded like ``re.Match.expand``
    (``r"layers.\\1.attention.q_proj.weight"``). A ``None`` replacement means "skip this
    tensor" (e.g. a checkpoint's precomputed ``rotary_emb.inv_freq``). Names no rule
    matches are kept unchanged.
    """

    def __init__(self, rules: Sequence[tuple[str, str | None]] | Mapping[str, str | None]) -> None:
        items = rules.items() if isinstance(rules, Mapping) else rules
        self.rules = [(re.compile(p), r) for p, r in items]

    def __call__(self, name: str) -> str | None:
        for pattern, repl in self.rules:
            m = pattern.fullmatch(name)
            if m:
                return None if repl is None else m.expand(repl)
        return name

    def __repr__(self) -> str:
        return f"RenameRules({[(p.pattern, r) for p, r in self.rules]!r})"
