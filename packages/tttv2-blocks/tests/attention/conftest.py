"""One intra-op thread per test process: tests run in parallel (pytest-xdist) on few
cores, and oversubscribed OpenMP threads make tiny tensor ops wait on each other."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
