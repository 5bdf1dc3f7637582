"""``tttv2``: the command line. One verb per module in ``tttv2.cli.commands``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch

from tttv2.cli.commands import VERBS
from tttv2.cli.errors import (
    BAD_INPUT_ERRORS,
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    REQUEST_FAILED_ERRORS,
    UsageError,
    report,
)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage dump) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> Parser:
    parser = Parser(
        prog="tttv2",
        description="Run, check and measure TTTv2 models on Hugging Face checkpoints.",
        epilog=(
            "Exit status: 0 success; 2 bad input (a one-line 'tttv2 VERB: error: ...' on stderr: "
            "checkpoint, config, request or option validation failed); 1 validate found a "
            "mismatch, a request failed in the engine (one line, e.g. NaN logits from "
            "--allow-nonfinite-weights), or an internal error (a bug: the traceback is printed); "
            "130 interrupted. "
            "TTTV2_DEBUG=1 prints the traceback of bad input too."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="VERB", required=True, parser_class=Parser)
    for verb in VERBS.values():
        verb.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in VERBS and getattr(VERBS[argv[0]], "PASSTHROUGH", False):
        prog = f"tttv2 {argv[0]}"
        try:
            return VERBS[argv[0]].run_argv(argv[1:])
        except BAD_INPUT_ERRORS as exc:
            return report(prog, exc)
        except SystemExit as exc:  # its own argparse: --help, usage errors
            return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        prog = f"tttv2 {argv[0]}" if argv and argv[0] in VERBS else "tttv2"
        return report(prog, exc)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    threads = torch.get_num_threads()
    try:
        return int(VERBS[args.command].run(args) or 0)
    except BAD_INPUT_ERRORS as exc:
        return report(f"tttv2 {args.command}", exc)
    except REQUEST_FAILED_ERRORS as exc:
        return report(f"tttv2 {args.command}", exc, EXIT_FAILED)
    except KeyboardInterrupt:
        print(f"tttv2 {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:  # a verb sets tttv2-hw's thread count for its job only (tttv2.cli.hardware)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

__all__ = ["EXIT_BAD_INPUT", "build_parser", "main"]
