"""``tttv2 hw``: the hardware layer's own command line (``tttv2.hw.cli.main``), run as
``tttv2 hw``: its usage, help and one-line errors name ``tttv2 hw``."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Sequence

from tttv2.cli.errors import UsageError

PASSTHROUGH = True
PROG = "tttv2 hw"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser(
        "hw",
        help="detected device, tuned parameters and memory plan (tttv2.hw)",
        description="Everything after 'hw' goes to tttv2.hw's command line; run 'tttv2 hw --help' "
        "for its options.",
        add_help=False,
    )


def run_argv(argv: Sequence[str]) -> int:
    try:
        from tttv2.hw.cli import main as hw_main
    except ImportError as exc:
        raise UsageError(
            f"the installed tttv2-hw has no command line (tttv2.hw.cli.main): {exc}"
        ) from None
    if "prog" in inspect.signature(hw_main).parameters:
        return int(hw_main(list(argv), prog=PROG) or 0)
    return int(hw_main(list(argv)) or 0)  # an older tttv2-hw, whose main takes no prog
