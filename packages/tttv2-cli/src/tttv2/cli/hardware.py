"""What tttv2-hw says about the device a command runs on: its ``DeviceConfig`` and the CPU
threads a job uses."""

from __future__ import annotations

import os

import torch

from tttv2.hw import DeviceConfig

#: Set by the user, these choose the threads themselves: the CLI then leaves them alone.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def device_config(device: torch.device) -> DeviceConfig:
    """tttv2-hw's description of ``device``: the profile forced with ``TTTV2_DEVICE_PROFILE``
    as given, else the detected device, or the host CPU when ``--device cpu`` runs on a
    machine whose detected device is an accelerator. Parameter overrides from
    ``TTTV2_PARAMS`` apply."""
    from tttv2.hw import default_device

    config = default_device()
    if config.source == "detected" and config.device_type != device.type:
        return DeviceConfig.auto_detect(device.type)
    return config


def apply_num_threads(config: DeviceConfig) -> int | None:
    """Run torch with tttv2-hw's ``num_threads`` for the whole model in decode (``tttv2 hw
    --op model``; by default the cores this process may use), unless the user chose the
    threads with ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS``. Returns the count set, or None
    when the user's choice stands."""
    if any(os.environ.get(name) for name in THREAD_ENV_VARS):
        return None
    threads = config.get_optimal_params("model", "decode").num_threads
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
