"""Choose among registered strategies from the runtime context."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tttv2.core.context import RuntimeContext
from tttv2.core.implementations import Implementation
from tttv2.core.modes import ExecutionMode
from tttv2.core.specs.base import ModuleSpec
from tttv2.core.strategy import ExecutionStrategy

_CONDITIONS = {
    "min_seq_len": lambda c, v: c.seq_len >= v,
    "max_seq_len": lambda c, v: c.seq_len <= v,
    "min_batch_size": lambda c, v: c.batch_size >= v,
    "max_batch_size": lambda c, v: c.batch_size <= v,
    "max_available_memory": lambda c, v: c.available_memory is not None and c.available_memory <= v,
    "latency_critical": lambda c, v: c.latency_critical is bool(v),
}


@dataclass(frozen=True)
class Rule:
    """Use ``strategy`` (with ``remap`` of requested modes) when every condition holds.

    Conditions: ``min_seq_len``, ``max_seq_len``, ``min_batch_size``, ``max_batch_size``,
    ``max_available_memory`` (bytes), ``latency_critical``."""

    strategy: str
    when: Mapping[str, Any] = field(default_factory=dict)
    remap: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.when) - set(_CONDITIONS))
        if unknown:
            raise ValueError(
                f"Rule.when has unknown condition {unknown[0]!r}; valid: {', '.join(sorted(_CONDITIONS))}"
            )
        for k, v in self.when.items():
            if k == "latency_critical":
                if not isinstance(v, bool):
                    raise ValueError(f"Rule.when[{k!r}]={v!r} is invalid: expected True or False")
            elif isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"Rule.when[{k!r}]={v!r} is invalid: expected an integer >= 0")
        for k, v in self.remap.items():
            ExecutionMode(k), ExecutionMode(v)  # validate names early

    def matches(self, context: RuntimeContext) -> bool:
        return all(_CONDITIONS[k](context, v) for k, v in self.when.items())


DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    # Long prompts, or too little memory for one-shot activations: chunked prefill.
    {"strategy": "multi_mode", "when": {"min_seq_len": 8192}, "remap": {"prefill": "long_context"}},
    {"strategy": "multi_mode", "when": {"max_available_memory": 1 << 30}, "remap": {"prefill": "long_context"}},
)


class DynamicStrategy(ExecutionStrategy):
    """Holds every candidate strategy's implementations and picks one per pass.

    ``rules`` are tried in order (dicts or :class:`Rule`); the first that matches the
    current :class:`RuntimeContext` decides; otherwise ``default`` does. Set the context
    with :meth:`update_context` (modules do it in ``set_mode(mode, context=...)``)."""

    name = "dynamic"

    def __init__(
        self,
        rules: Sequence[Mapping[str, Any] | Rule] = DEFAULT_RULES,
        default: str = "prefill_decode",
        **options: Any,
    ) -> None:
        from tttv2.core.registry import StrategyRegistry

        self.rules = tuple(r if isinstance(r, Rule) else Rule(**r) for r in rules)
        super().__init__(
            rules=[{"strategy": r.strategy, "when": dict(r.when), "remap": dict(r.remap)} for r in self.rules],
            default=default,
            **options,
        )
        names = {default, *(r.strategy for r in self.rules)}
        self.candidates = {n: StrategyRegistry.get(n) for n in sorted(names)}
        self.default = default
        self.context = RuntimeContext()

    def update_context(self, context: RuntimeContext) -> None:
        self.context = context

    def choose(self, context: RuntimeContext | None = None) -> tuple[ExecutionStrategy, Mapping[str, str]]:
        """The strategy (and mode remapping) the context selects."""
        ctx = context or self.context
        for rule in self.rules:
            if rule.matches(ctx):
                return self.candidates[rule.strategy], rule.remap
        return self.candidates[self.default], {}

    def select_strategy(self, context: RuntimeContext) -> ExecutionStrategy:
        return self.choose(context)[0]

    def get_execution_modes(self) -> list[ExecutionMode]:
        modes: list[ExecutionMode] = []
        for s in self.candidates.values():
            modes += [m for m in s.get_execution_modes() if m not in modes]
        return modes

    def optional_modes(self) -> frozenset[ExecutionMode]:
        """Modes every candidate that lists them marks optional."""
        return frozenset(
            m
            for m in self.get_execution_modes()
            if all(m in s.optional_modes() for s in self.candidates.values() if m in s.get_execution_modes())
        )

    def specialize_module(self, module_spec: ModuleSpec, device: Any) -> dict[ExecutionMode, Implementation]:
        impls: dict[ExecutionMode, Implementation] = {}
        for s in self.candidates.values():
            for mode, impl in s.specialize_module(module_spec, device).items():
                impls.setdefault(mode, impl)
        return impls

    def resolve_mode(self, mode: ExecutionMode) -> ExecutionMode:
        strategy, remap = self.choose()
        return strategy.resolve_mode(ExecutionMode(remap.get(mode.value, mode.value)))
