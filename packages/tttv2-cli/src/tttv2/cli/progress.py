"""Progress bars on stderr (tqdm), shown only to a person: off with ``--json`` and when
stderr is not a terminal."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any


def progress_enabled(json_output: bool) -> bool:
    return not json_output and sys.stderr.isatty()


class Bar:
    """A tqdm bar, or nothing when disabled. ``update_to(n)`` moves it to ``n``."""

    def __init__(
        self, enabled: bool, total: int | None, desc: str, unit: str = "it", **kwargs: Any
    ) -> None:
        self._bar = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                desc=desc,
                unit=unit,
                file=sys.stderr,
                leave=False,
                dynamic_ncols=True,
                **kwargs,
            )

    def update_to(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n - self._bar.n)

    def load_callback(self, name: str, done: int, total: int) -> None:
        """A ``progress(name, done, total)`` callback for weight loading."""
        if self._bar is not None:
            if self._bar.total != total:
                self._bar.total = total
            self.update_to(done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
