"""Per-request stopping: EOS ids, stop strings across token boundaries, max new tokens,
context limit. Also keeps the request's text and decides how much of it may be released
to a stream (text that could still become a stop string is held back)."""

from __future__ import annotations

from collections.abc import Sequence

from tttv2.serve.runtime.detokenizer import Detokenize, IncrementalDetokenizer
from tttv2.serve.runtime.stop_conditions import StopConditions


class StopChecker:
    def __init__(
        self,
        stop: StopConditions,
        prompt_ids: Sequence[int],
        context_limit: int,
        detokenize: Detokenize | None = None,
    ) -> None:
        self.stop = stop
        self.prompt_len = len(prompt_ids)
        self.context_limit = context_limit
        self.detokenizer = IncrementalDetokenizer(detokenize, prompt_ids) if detokenize else None
        self.text = ""  # text of the output so far (cut at a stop string once one matched)
        self.released = 0  # characters of ``text`` handed out in events
        self._longest_stop = max((len(s) for s in stop.stop_strings), default=0)

    def mark(self) -> tuple[str, int, tuple[int, int, int] | None]:
        """The state to :meth:`rollback` to (a step that failed part-way is undone)."""
        return (
            self.text,
            self.released,
            self.detokenizer.mark() if self.detokenizer is not None else None,
        )

    def rollback(self, mark: tuple[str, int, tuple[int, int, int] | None]) -> None:
        self.text, self.released, detok = mark
        if self.detokenizer is not None and detok is not None:
            self.detokenizer.rollback(detok)

    def add(self, token_id: int, num_output: int) -> tuple[str, str | None, int | str | None]:
        """Account for a new token (``num_output`` generated so far, this one included).
        Returns (text released now, finish reason or None, stop reason)."""
        if token_id in self.stop.eos_token_ids:
            return self._finish(), "stop", token_id
        if self.detokenizer is not None:
            before = len(self.text)
            self.text += self.detokenizer.add(token_id)
            hit = self._find_stop(before)
            if hit is not None:
                at, stop_string = hit
                self.text = self.text[:at]
                return self._release(len(self.text)), "stop", stop_string
        if self.stop.max_new_tokens is not None and num_output >= self.stop.max_new_tokens:
            return self._finish(), "length", None
        if self.prompt_len + num_output >= self.context_limit:
            return self._finish(), "context", None
        return self._release(len(self.text) - self._held_back()), None, None

    def finish(self) -> str:
        """Release everything (the request ends for a reason outside this checker)."""
        return self._finish()

    # -- helpers ---------------------------------------------------------------------
    def _find_stop(self, before: int) -> tuple[int, str] | None:
        best: tuple[int, str] | None = None
        for s in self.stop.stop_strings:
            at = self.text.find(s, max(0, before - len(s) + 1))
            if at >= 0 and (best is None or at < best[0]):
                best = (at, s)
        return best

    def _held_back(self) -> int:
        """Length of the longest end of the text that begins some stop string."""
        for n in range(min(self._longest_stop - 1, len(self.text)), 0, -1):
            tail = self.text[-n:]
            if any(s.startswith(tail) for s in self.stop.stop_strings):
                return n
        return 0

    def _finish(self) -> str:
        if self.detokenizer is not None:
            self.text += self.detokenizer.flush()
        return self._release(len(self.text))

    def _release(self, upto: int) -> str:
        upto = max(upto, self.released)
        out = self.text[self.released : upto]
        self.released = upto
        return out
