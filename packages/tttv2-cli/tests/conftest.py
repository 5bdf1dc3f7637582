"""CLI tests that run a real model need the Llama plugin (models/llama3) installed in the
environment; they are skipped, with that reason, where it is not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

LLAMA = "LlamaForCausalLM"


def _shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


@pytest.fixture(scope="session")
def llama_plugin() -> None:
    from tttv2.core.model_plugins import list_model_plugins

    if LLAMA not in list_model_plugins():
        pytest.skip(
            "the LlamaForCausalLM model plugin (models/llama3) is not installed in this environment"
        )


@pytest.fixture(scope="session")
def tiny_llama(llama_plugin, tmp_path_factory):
    """A tiny random Llama checkpoint (tttv2.testing.hf) with a tokenizer."""
    from tttv2.testing.hf import build_tiny_checkpoint

    return build_tiny_checkpoint(
        _shared(tmp_path_factory) / "cli-checkpoints", LLAMA, {"initializer_range": 0.3}
    )
