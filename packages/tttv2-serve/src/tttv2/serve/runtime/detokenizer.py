"""Incremental detokenization: the text each new token adds.

Decoding one token alone is wrong for most tokenizers (a leading-space marker or a
multi-byte character split over tokens), and decoding the whole output every step costs
O(n^2). As in Hugging Face TGI and vLLM, decode a short window twice — with and without
the new tokens — and emit the difference; hold the text back while it ends in an
incomplete character (U+FFFD).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Detokenize = Callable[[Sequence[int]], str]

_REPLACEMENT = "\ufffd"


class IncrementalDetokenizer:
    def __init__(self, detokenize: Detokenize, prompt_ids: Sequence[int], context: int = 5) -> None:
        self.detokenize = detokenize
        self.ids = list(prompt_ids)
        self.prefix_offset = max(len(self.ids) - context, 0)  # window start (context tokens)
        self.read_offset = len(self.ids)  # tokens before this are already emitted as text

    def add(self, token_id: int) -> str:
        """Append a token; the text it completes (may be ``""``)."""
        self.ids.append(token_id)
        return self._advance(final=False)

    def mark(self) -> tuple[int, int, int]:
        """The state to :meth:`rollback` to (tokens added later are forgotten)."""
        return len(self.ids), self.prefix_offset, self.read_offset

    def rollback(self, mark: tuple[int, int, int]) -> None:
        n, self.prefix_offset, self.read_offset = mark
        del self.ids[n:]

    def flush(self) -> str:
        """Text still held back (an incomplete character at the very end)."""
        return self._advance(final=True)

    def _advance(self, final: bool) -> str:
        if self.read_offset >= len(self.ids):
            return ""
        prefix_text = self.detokenize(self.ids[self.prefix_offset : self.read_offset])
        new_text = self.detokenize(self.ids[self.prefix_offset :])
        if len(new_text) <= len(prefix_text) or (new_text.endswith(_REPLACEMENT) and not final):
            return ""
        self.prefix_offset = self.read_offset
        self.read_offset = len(self.ids)
        return new_text[len(prefix_text) :]
