"""Training the built-in checkpoint briefly on :data:`tttv2.cli.default_text.PARAGRAPHS`.

Random weights give near-uniform next-token distributions, so greedy decoding repeats one
token; a few dozen full-batch AdamW steps make the model finish the paragraphs it was
trained on, so ``tttv2 generate`` prints real words. The recipe is fixed (seed, steps,
learning rate, gradient clipping) and runs on one CPU thread on the CPU, which makes it
deterministic and, on a small shared CPU, also no slower than more threads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from tttv2.cli.default_text import PARAGRAPHS

SEED = 0
STEPS = 60
LEARNING_RATE = 3e-3
BETAS = (0.9, 0.95)
MAX_GRAD_NORM = 1.0
IGNORE = -100  # label of padding positions (transformers' ignore index)

#: Everything that determines the trained weights besides the random ones it starts from.
RECIPE: dict[str, Any] = {
    "seed": SEED,
    "steps": STEPS,
    "learning_rate": LEARNING_RATE,
    "betas": list(BETAS),
    "max_grad_norm": MAX_GRAD_NORM,
    "threads": 1,
}


def training_batch(
    tokenizer: Any, eos_token_id: int, paragraphs: Sequence[str] = PARAGRAPHS
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, labels)``, one row per paragraph: its tokens (the tokenizer adds the
    beginning-of-sequence token) and ``eos_token_id``, padded at the end; padding is not
    learned (label ``-100``)."""
    rows = [list(tokenizer.encode(text).ids) + [eos_token_id] for text in paragraphs]
    width = max(len(r) for r in rows)
    inputs = torch.tensor([r + [eos_token_id] * (width - len(r)) for r in rows])
    labels = torch.tensor([r + [IGNORE] * (width - len(r)) for r in rows])
    return inputs, labels


def train(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    steps: int = STEPS,
    on_step: Callable[[int], None] | None = None,
) -> float:
    """Train a transformers causal LM in place on one fixed batch; returns the last loss.
    ``on_step(n)`` is called after step ``n``. torch's thread count and global random state
    are restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            model.train()
            params = [p for p in model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(params, lr=LEARNING_RATE, betas=BETAS, weight_decay=0.0)
            loss = torch.tensor(float("nan"))
            for step in range(steps):
                loss = model(input_ids=inputs, labels=labels).loss
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
                optimizer.step()
                if on_step is not None:
                    on_step(step + 1)
            model.eval()
    finally:
        torch.set_num_threads(threads)
    return float(loss.detach())
