"""The CLI's error boundary: bad input becomes one line on stderr and exit status 2.

What counts as bad input is decided where the input is validated, not here: checkpoint,
config, request and command-line validation raise subclasses of
:class:`tttv2.core.errors.InputError` (``CheckpointError``, ``ModelLoadError``,
``SpecError``, ``UnknownNameError``, ``MemoryPlanError``, :class:`UsageError`, ...), and
the boundary prints exactly those as ``tttv2 <verb>: error: <message>`` with no
traceback. A new kind of bad input is a new subclass, never a new ``except`` clause here.
Any other exception (a ``KeyError``, ``TypeError``, a plain ``ValueError`` ...) is a bug:
it keeps its traceback and exit status 1. ``TTTV2_DEBUG=1`` shows the traceback of every
error.
"""

from __future__ import annotations

import os
import sys

from tttv2.core.errors import InputError, TTTv2Error
from tttv2.hw.mesh import WorkerFailedError
from tttv2.serve.runtime.errors import RequestFailedError

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1

#: A request the engine ended with an error (NaN logits from NaN weights the user allowed,
#: a model that raised on its pass): not bad input and not a bug of the command, so one line
#: and exit status 1.
#: With --tp: a request failed on rank 0, or a rank raised, died or stopped answering (the
#: whole group was ended; the line names the rank, TTTV2_DEBUG=1 shows its traceback).
REQUEST_FAILED_ERRORS: tuple[type[BaseException], ...] = (RequestFailedError, WorkerFailedError)

#: The exception types reported as bad input: one base, raised by every validator
#: (the runtime's request errors included).
BAD_INPUT_ERRORS: tuple[type[BaseException], ...] = (InputError,)


class UsageError(InputError, TTTv2Error, ValueError):
    """The command line itself is wrong (unknown option, bad value, missing file)."""


def one_line(exc: BaseException) -> str:
    """The exception's message on a single line."""
    text = str(exc) if not isinstance(exc, KeyError) or not exc.args else str(exc.args[0])
    if isinstance(exc, WorkerFailedError):  # the first line; the rest is the rank's traceback
        text = text.splitlines()[0] if text else text
    text = " ".join(text.split())
    return text or type(exc).__name__


def report(prog: str, exc: BaseException, status: int = EXIT_BAD_INPUT) -> int:
    """Print ``exc`` as one line for ``prog`` and return ``status``."""
    if os.environ.get("TTTV2_DEBUG"):
        raise exc
    print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
    return status
