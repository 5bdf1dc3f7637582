"""The built-in checkpoint ``tttv2 generate`` and ``tttv2 bench`` use without
``--checkpoint``: a small Llama-architecture model with a real byte-level BPE tokenizer,
built on first use by tttv2.testing.hf (seeded random weights), then trained briefly and
deterministically on a few paragraphs of text (:mod:`tttv2.cli.default_text`, recipe in
:mod:`tttv2.cli.default_training`) so that it continues prompts with words rather than one
repeated token, and cached.

The cache lives under ``$TTTV2_CACHE_DIR`` (default ``~/.cache/tttv2``) in
``checkpoints/NAME``. The builder works in a temporary folder and renames it into place when
complete, so an interrupted first run never leaves a broken checkpoint behind. Checkpoints
cached under an earlier ``NAME`` (e.g. the untrained ``llama-tiny-v1``) are not used.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from tttv2.cli import default_training
from tttv2.cli.default_text import PARAGRAPHS
from tttv2.cli.progress import Bar
from tttv2.hw.cache import cache_dir

ARCHITECTURE = "LlamaForCausalLM"
SEED = 0
#: Bump when DEFAULT_CONFIG, SEED, the text or the training recipe change.
NAME = "llama-tiny-v2"
READY = "tttv2_default_checkpoint.json"  # written last: its presence means complete

#: Llama 3.2-like shape (GQA, tied embeddings, llama3 RoPE scaling), small enough to build
#: in seconds and run anywhere.
DEFAULT_CONFIG: dict[str, Any] = {
    "hidden_size": 256,
    "intermediate_size": 768,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "vocab_size": 512,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "rope_scaling": {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 1024,
    },
    "tie_word_embeddings": True,
}

DEFAULT_CHECKPOINT_NOTE = (
    "; without it, a small built-in Llama-architecture checkpoint (4 layers, hidden 256, real "
    "tokenizer, trained for seconds on a few paragraphs of text that it then recites) is built "
    "on first use and cached under $TTTV2_CACHE_DIR (default ~/.cache/tttv2)"
)


def default_checkpoint(show_progress: bool = False) -> Path:
    """The folder of the built-in checkpoint, building it first if it is not cached.

    A cached checkpoint is found without importing transformers (only building needs it)."""
    root = cache_dir() / "checkpoints"
    target = root / NAME
    if (target / READY).is_file():
        return target
    if show_progress:
        print(f"building the built-in checkpoint in {target} (first use only) ...", file=sys.stderr)
    from tttv2.testing.hf import build_tiny_checkpoint

    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{NAME}-", dir=root))
    try:
        random_init = build_tiny_checkpoint(staging, ARCHITECTURE, DEFAULT_CONFIG, seed=SEED)
        built = random_init.path
        loss = train_in_place(random_init, show_progress)
        ready = {
            "architecture": ARCHITECTURE,
            "seed": SEED,
            "config": DEFAULT_CONFIG,
            "training": {
                **default_training.RECIPE,
                "paragraphs": len(PARAGRAPHS),
                "final_loss": loss,
            },
        }
        (built / READY).write_text(json.dumps(ready) + "\n")
        try:
            os.rename(built, target)
        except OSError:  # another process finished first
            if not (target / READY).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def train_in_place(checkpoint: Any, show_progress: bool = False) -> float:
    """Train a ``tttv2.testing.hf`` checkpoint's weights on the built-in text and save them
    back into its folder; returns the final training loss."""
    model = checkpoint.load_model()  # transformers, float32, on the CPU
    tokenizer = checkpoint.load_tokenizer()
    inputs, labels = default_training.training_batch(
        tokenizer, int(checkpoint.config["eos_token_id"])
    )
    with Bar(
        show_progress, default_training.STEPS, "training the built-in checkpoint", unit="step"
    ) as bar:
        loss = default_training.train(model, inputs, labels, on_step=bar.update_to)
    model.save_pretrained(checkpoint.path)
    return loss
