"""A tiny checkpoint trained briefly to memorise a few tokens, so its next-token
distributions are confident as real checkpoints' are and bf16 top-1 agreement measures
the implementation rather than coin flips between near-tied logits."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

TRAIN_TOKENS, TRAIN_STEPS = 64, 50


def trained_checkpoint(
    checkpoint: Any, cache_dir: str | Path, *, tokens: int = TRAIN_TOKENS, steps: int = TRAIN_STEPS
) -> tuple[Path, list[int]]:
    """``(folder, token ids)``: ``checkpoint`` (a ``TinyCheckpoint``) trained with AdamW for
    ``steps`` steps on the first ``tokens`` tokens of tttv2.testing.hf's corpus, saved once
    under ``cache_dir`` (atomically, so pytest-xdist workers may share it)."""
    from tttv2.testing.hf.corpus import CORPUS

    ids = torch.tensor(checkpoint.load_tokenizer().encode(" ".join(CORPUS)).ids[:tokens])
    folder = Path(cache_dir) / f"trained-{steps}-{tokens}-{checkpoint.path.name}"
    if not (folder / "config.json").is_file():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = checkpoint.load_model().train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
            for _ in range(steps):
                loss = model(ids[None], labels=ids[None]).loss
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".trained-"))
        model.eval().save_pretrained(tmp)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            if (checkpoint.path / name).is_file():
                shutil.copy(checkpoint.path / name, tmp / name)
        try:
            os.rename(tmp, folder)
        except OSError:  # another worker finished first
            shutil.rmtree(tmp, ignore_errors=True)
    return folder, ids.tolist()
