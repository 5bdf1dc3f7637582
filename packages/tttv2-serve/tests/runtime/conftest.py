"""Shared setup of the runtime tests: the helpers in this folder are importable whatever
pytest's import mode, and torch runs single-threaded inside each test."""

import sys
from pathlib import Path

import pytest
import torch

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The reference model runs many tiny ops; on a loaded 2-core machine intra-op
    threading only adds synchronisation cost. Restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
