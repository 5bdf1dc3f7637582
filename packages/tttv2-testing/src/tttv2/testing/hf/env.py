"""Importing ``transformers`` for the adapter: offline, quiet, and only when needed."""

from __future__ import annotations

import os
from functools import cache
from typing import Any


def offline() -> None:
    """Forbid any download by the Hugging Face libraries in this process."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@cache
def transformers() -> Any:
    """The ``transformers`` module (offline, without progress bars)."""
    offline()
    try:
        import transformers as tf
    except ImportError as exc:
        raise ImportError(
            "tttv2.testing.hf needs transformers and tokenizers: pip install 'tttv2-testing[hf]'"
        ) from exc
    tf.utils.logging.disable_progress_bar()
    tf.utils.logging.set_verbosity_error()
    return tf
