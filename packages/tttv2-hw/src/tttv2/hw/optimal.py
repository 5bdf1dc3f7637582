"""``get_optimal_params`` without building a DeviceConfig yourself."""

from __future__ import annotations

import os
from functools import lru_cache

from tttv2.core.modes import ExecutionMode
from tttv2.core.specs import ModuleSpec
from tttv2.hw.device.config import DeviceConfig
from tttv2.hw.device.profiles import ENV_VAR as PROFILE_ENV
from tttv2.hw.params.overrides import ENV_VAR as PARAMS_ENV
from tttv2.hw.params.types import OpParams


@lru_cache(maxsize=8)
def _detected(profile_env: str | None, params_env: str | None) -> DeviceConfig:
    return DeviceConfig.auto_detect()


def default_device() -> DeviceConfig:
    """``DeviceConfig.auto_detect()``, cached per value of the two environment variables."""
    return _detected(os.environ.get(PROFILE_ENV), os.environ.get(PARAMS_ENV))


def get_optimal_params(
    op: str,
    mode: ExecutionMode | str,
    spec: ModuleSpec | None = None,
    device: DeviceConfig | None = None,
) -> OpParams:
    """Parameters for ``op`` in ``mode`` on ``device`` (the detected one when None)."""
    return (device or default_device()).get_optimal_params(op, mode, spec)
