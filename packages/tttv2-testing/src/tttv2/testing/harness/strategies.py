"""Which execution strategies a component check builds its block with (``strategies=``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tttv2.core import ExecutionStrategy, StrategyRegistry

StrategiesOption = str | Sequence[ExecutionStrategy | str]


@dataclass(frozen=True)
class StrategyCandidates:
    """Strategy instances to check, by label, and the ones that could not even be made.

    ``explicit`` is False for ``"all"``: a strategy the block's implementations do not
    cover is then skipped (and listed), where a strategy named explicitly must work."""

    strategies: tuple[tuple[str, ExecutionStrategy], ...]
    skipped: tuple[tuple[str, str], ...]
    explicit: bool


def strategy_label(strategy: ExecutionStrategy) -> str:
    return strategy.name or type(strategy).__name__


def strategy_candidates(strategies: StrategiesOption) -> StrategyCandidates:
    """Resolve ``"all"`` (every strategy in :class:`StrategyRegistry`) or a list of
    registered names and :class:`ExecutionStrategy` instances."""
    if isinstance(strategies, str):
        if strategies != "all":
            raise ValueError(
                f"strategies={strategies!r} is invalid: expected 'all' or a list of strategy names "
                f"(registered: {', '.join(StrategyRegistry.names())}) or ExecutionStrategy instances"
            )
        found: list[tuple[str, ExecutionStrategy]] = []
        skipped: list[tuple[str, str]] = []
        for name in StrategyRegistry.names():
            try:
                found.append((name, StrategyRegistry.get(name)))
            except Exception as exc:  # a plugin needing options: listed, never silently dropped
                skipped.append((name, f"cannot be made without options: {exc}"))
        return StrategyCandidates(tuple(found), tuple(skipped), explicit=False)
    if not isinstance(strategies, Sequence) or not strategies:
        raise ValueError(
            f"strategies={strategies!r} is invalid: expected 'all' or a non-empty list of strategy names "
            "or ExecutionStrategy instances"
        )
    chosen: list[tuple[str, ExecutionStrategy]] = []
    for item in strategies:
        if isinstance(item, str):
            chosen.append((item, StrategyRegistry.get(item)))
        elif isinstance(item, ExecutionStrategy):
            chosen.append((strategy_label(item), item))
        else:
            raise ValueError(
                f"strategies item {item!r} is invalid: expected a registered strategy name or an ExecutionStrategy"
            )
    return StrategyCandidates(tuple(chosen), (), explicit=True)
