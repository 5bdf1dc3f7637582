"""Options shared by several verbs, and value checkers that explain what is valid."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

DTYPE_CHOICES = ("float32", "bfloat16")
DEVICE_CHOICES = ("auto", "cpu", "cuda")


def int_at_least(low: int) -> Callable[[str], int]:
    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is invalid: expected an integer >= {low}")
        return value

    return check


def float_in(
    low: float, high: float, low_open: bool = False, hint: str = ""
) -> Callable[[str], float]:
    def check(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        ok = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
        if not ok:
            raise argparse.ArgumentTypeError(f"{text} is invalid: expected {hint}")
        return value

    return check


def seed(text: str) -> int:
    value = int_at_least(0)(text)
    if value >= 2**63:
        raise argparse.ArgumentTypeError(f"{value} is invalid: expected an integer in [0, 2**63)")
    return value


def token_ids(text: str) -> list[int]:
    """``"1,2,3"`` -> ``[1, 2, 3]``."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of token ids like 1,2,3"
        )
    try:
        ids = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of token ids like 1,2,3"
        ) from None
    if any(i < 0 for i in ids):
        raise argparse.ArgumentTypeError(f"{text!r}: token ids must be >= 0")
    return ids


def add_checkpoint(
    parser: argparse.ArgumentParser, *, required: bool, default_note: str = ""
) -> None:
    parser.add_argument(
        "--checkpoint",
        type=Path,
        metavar="DIR",
        required=required,
        help="Hugging Face checkpoint folder: config.json, *.safetensors (one file, or shards with "
        "model.safetensors.index.json) and tokenizer.json" + default_note,
    )


def add_model_options(parser: argparse.ArgumentParser, *, strategy: bool = True) -> None:
    parser.add_argument(
        "--dtype",
        choices=DTYPE_CHOICES,
        default="float32",
        help="dtype of the weights and activations (default: %(default)s)",
    )
    parser.add_argument(
        "--device",
        choices=DEVICE_CHOICES,
        default="auto",
        help="where to run: auto picks cuda when a GPU is available, else cpu (default: %(default)s)",
    )
    parser.add_argument(
        "--allow-nonfinite-weights",
        action="store_true",
        help="load weights holding NaN or infinity instead of refusing them (plugins built on "
        "tttv2.blocks.weights.load_hf_checkpoint check every tensor while copying it)",
    )
    if strategy:
        parser.add_argument(
            "--strategy",
            metavar="NAME",
            default=None,
            help="execution strategy registered with tttv2.core (e.g. prefill_decode, unified, "
            "multi_mode, continuous_batching, dynamic; default: the library default)",
        )


def add_json(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help=f"print {what} as one JSON object on stdout (no progress bars)",
    )
