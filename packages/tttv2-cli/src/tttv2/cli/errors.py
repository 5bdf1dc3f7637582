"""The CLI's error boundary: bad input becomes one line on stderr and exit status 2.

Errors the library raises on purpose for bad input (``TTTv2Error``, ``ValueError``,
``LookupError``, ``OSError``) are printed as ``tttv2 <verb>: error: <message>`` with no
traceback. Anything else is a bug and keeps its traceback. ``TTTV2_DEBUG=1`` shows the
traceback of every error.
"""

from __future__ import annotations

import os
import sys

from tttv2.core.errors import TTTv2Error

EXIT_BAD_INPUT = 2

BAD_INPUT_ERRORS: tuple[type[BaseException], ...] = (TTTv2Error, ValueError, LookupError, OSError)


class UsageError(TTTv2Error, ValueError):
    """The command line itself is wrong (unknown option, bad value, missing file)."""


def one_line(exc: BaseException) -> str:
    """The exception's message on a single line."""
    text = str(exc) if not isinstance(exc, KeyError) or not exc.args else str(exc.args[0])
    text = " ".join(text.split())
    return text or type(exc).__name__


def report(prog: str, exc: BaseException) -> int:
    """Print ``exc`` as one line for ``prog`` and return the exit status."""
    if os.environ.get("TTTV2_DEBUG"):
        raise exc
    print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
    return EXIT_BAD_INPUT
