"""Choose among registered strategies from the runtime context."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from tttv2.core.context import RuntimeContext
from tttv2.core.errors import SpecError
from tttv2.core.implementations import Implementation
from tttv2.core.modes import ExecutionMode
from tttv2.core.specs.base import ModuleSpec
from tttv2.core.strategy import ExecutionStrategy

_CONDITIONS: dict[str, Callable[[RuntimeContext, Any], bool]] = {
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
    ``max_available_memory`` (bytes), ``latency_critical``. ``options`` are the chosen
    strategy's constructor options (e.g. ``{"chunk_size": 4096}`` for ``multi_mode``);
    ``variants`` is not among them: it belongs to the :class:`DynamicStrategy`, whose
    candidates share one set of implementations."""

    strategy: str
    when: Mapping[str, Any] = field(default_factory=dict)
    remap: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.strategy, str) or not self.strategy:
            raise SpecError(
                "Rule", "strategy", self.strategy, "a registered strategy name (a non-empty str)"
            )
        for f in ("when", "remap"):
            if not isinstance(getattr(self, f), Mapping):
                raise SpecError("Rule", f, getattr(self, f), "a table (mapping)")
        unknown = sorted(set(self.when) - set(_CONDITIONS), key=str)
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
        if not isinstance(self.options, Mapping) or not all(
            isinstance(k, str) for k in self.options
        ):
            raise SpecError(
                "Rule", "options", self.options, f"a table of {self.strategy!r}'s options by name"
            )
        if "variants" in self.options:
            raise SpecError(
                "Rule",
                "options['variants']",
                self.options["variants"],
                "no per-rule variants; pass variants=... to the DynamicStrategy (its candidates share implementations)",
            )

    def matches(self, context: RuntimeContext) -> bool:
        return all(_CONDITIONS[k](context, v) for k, v in self.when.items())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        """A rule from plain data (a configuration file's table)."""
        if not isinstance(data, Mapping):
            raise SpecError(
                "DynamicStrategy", "rules", data, "a sequence of rule tables or Rule objects"
            )
        names = [f.name for f in fields(cls)]
        for key in data:
            if key not in names:
                raise SpecError("Rule", str(key), data[key], "one of " + ", ".join(names))
        if "strategy" not in data:
            raise SpecError(
                "Rule", "strategy", None, "a registered strategy name (the key is required)"
            )
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (``options`` only when there are some)."""
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "when": dict(self.when),
            "remap": dict(self.remap),
        }
        if self.options:
            out["options"] = dict(self.options)
        return out


def candidate_key(strategy: str, options: Mapping[str, Any]) -> str:
    """The key of a candidate in :attr:`DynamicStrategy.candidates`: the strategy name, with
    its options when a rule gives some (``"multi_mode(chunk_size=4096)"``)."""
    if not options:
        return strategy
    return f"{strategy}({', '.join(f'{k}={v!r}' for k, v in sorted(options.items()))})"


DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    # Long prompts, or too little memory for one-shot activations: chunked prefill.
    {"strategy": "multi_mode", "when": {"min_seq_len": 8192}, "remap": {"prefill": "long_context"}},
    {
        "strategy": "multi_mode",
        "when": {"max_available_memory": 1 << 30},
        "remap": {"prefill": "long_context"},
    },
)


class DynamicStrategy(ExecutionStrategy):
    """Holds every candidate strategy's implementations and picks one per pass.

    ``rules`` are tried in order (dicts or :class:`Rule`); the first that matches the
    current :class:`RuntimeContext` decides; otherwise ``default`` does. Set the context
    with :meth:`update_context` (modules do it in ``set_mode(mode, context=...)``).

    ``candidates`` holds one strategy per name, plus one per distinct set of rule
    ``options`` (see :func:`candidate_key`); ``variants`` is passed on to every candidate."""

    name = "dynamic"
    accepted_options = frozenset({"rules", "default"})

    def __init__(
        self,
        rules: Sequence[Mapping[str, Any] | Rule] = DEFAULT_RULES,
        default: str = "prefill_decode",
        variants: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        from tttv2.core.registry import StrategyRegistry

        self.rules = tuple(r if isinstance(r, Rule) else Rule.from_dict(r) for r in rules)
        if not isinstance(default, str) or not default:
            raise SpecError(
                "DynamicStrategy",
                "default",
                default,
                "a registered strategy name (a non-empty str)",
            )
        super().__init__(
            variants=variants, rules=[r.to_dict() for r in self.rules], default=default, **options
        )
        self._rule_keys = tuple(candidate_key(r.strategy, r.options) for r in self.rules)
        shared = (
            {"variants": dict(variants)} if variants else {}
        )  # strategies taking no arguments keep working
        built: dict[str, ExecutionStrategy] = {default: StrategyRegistry.get(default, **shared)}
        for i, (rule, key) in enumerate(zip(self.rules, self._rule_keys, strict=True)):
            if key not in built:
                try:
                    built[key] = StrategyRegistry.get(rule.strategy, **shared, **rule.options)
                except SpecError as exc:  # an option the strategy rejects: say which rule gave it
                    field = f"rules[{i}].options.{exc.field}"
                    raise SpecError("DynamicStrategy", field, exc.value, exc.expected) from exc
        self.candidates = dict(sorted(built.items()))
        self.default = default
        self.context = RuntimeContext()

    def update_context(self, context: RuntimeContext) -> None:
        self.context = context

    def choose(
        self, context: RuntimeContext | None = None
    ) -> tuple[ExecutionStrategy, Mapping[str, str]]:
        """The strategy (and mode remapping) the context selects."""
        ctx = context or self.context
        for rule, key in zip(self.rules, self._rule_keys, strict=True):
            if rule.matches(ctx):
                return self.candidates[key], rule.remap
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
            if all(
                m in s.optional_modes()
                for s in self.candidates.values()
                if m in s.get_execution_modes()
            )
        )

    def specialize_module(
        self, module_spec: ModuleSpec, device: Any
    ) -> dict[ExecutionMode, Implementation]:
        impls: dict[ExecutionMode, Implementation] = {}
        for s in self.candidates.values():
            for mode, impl in s.specialize_module(module_spec, device).items():
                impls.setdefault(mode, impl)
        return impls

    def resolve_mode(self, mode: ExecutionMode) -> ExecutionMode:
        strategy, remap = self.choose()
        return strategy.resolve_mode(ExecutionMode(remap.get(mode.value, mode.value)))
