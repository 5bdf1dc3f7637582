"""Turn the tables, a spec and the user's overrides into one typed parameter object."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from tttv2.core.errors import TTTv2Error, UnknownNameError
from tttv2.core.modes import ExecutionMode
from tttv2.core.specs import ModuleSpec
from tttv2.hw.params.spec_rules import apply_spec_rules
from tttv2.hw.params.tables import DEFAULT_RULES, FIELD_ALIASES, matches
from tttv2.hw.params.types import PARAMS_CLASSES, OpParams


class DeviceConfig(Protocol):
    """What resolving reads of a :class:`tttv2.hw.DeviceConfig` (its type, profile, the
    user's overrides and the attributes tables name with ``"$attr"``)."""

    @property
    def device_type(self) -> str: ...
    @property
    def profile(self) -> str: ...
    @property
    def overrides(self) -> Sequence[tuple[Any, dict[str, Any]]]: ...


def resolve_params(
    device: DeviceConfig, op: str, mode: ExecutionMode | str, spec: ModuleSpec | None = None
) -> OpParams:
    """Parameters for ``op`` in ``mode`` on ``device``: tables, then ``spec``, then overrides."""
    cls = PARAMS_CLASSES.get(op)
    if cls is None:
        raise UnknownNameError("operation", op, PARAMS_CLASSES)
    mode_name = ExecutionMode(mode).value
    knobs: dict[str, Any] = {}
    for selector, values in DEFAULT_RULES:
        if matches(selector, device.device_type, mode_name, op):
            knobs.update(values)
    knobs = {k: _from_device(device, k, v) for k, v in knobs.items()}
    if spec is not None:
        knobs = apply_spec_rules(op, spec, knobs)
    names = cls.knobs()
    for selector, values in device.overrides:
        if matches(selector, device.device_type, mode_name, op):
            # an override names the field (``attention_kernel``); the tables name the knob it reads
            knobs.update(
                {FIELD_ALIASES.get(k, k) if k in names else k: v for k, v in values.items()}
            )
    fields = {name: knobs[FIELD_ALIASES.get(name, name)] for name in names}
    return cls(mode=mode_name, device=device.profile, **fields)


def _from_device(device: DeviceConfig, knob: str, value: Any) -> Any:
    """Resolve ``"$attr"`` table values against the device description."""
    if not (isinstance(value, str) and value.startswith("$")):
        return value
    attr = value[1:]
    if not hasattr(device, attr):
        raise TTTv2Error(f"parameter table sets {knob} from unknown device attribute {attr!r}")
    return getattr(device, attr)
