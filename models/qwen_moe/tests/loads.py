"""Each architecture's ``load`` (the plugin the entry point names), by checkpoint."""

from __future__ import annotations

from typing import Any

from tttv2_model_qwen_moe import qwen2_moe, qwen3_moe

LOADS = {qwen2_moe.ARCHITECTURE: qwen2_moe.load, qwen3_moe.ARCHITECTURE: qwen3_moe.load}


def load_for(checkpoint: Any) -> Any:
    return LOADS[checkpoint.architecture]
