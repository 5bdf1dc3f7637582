"""Response bodies and stream chunks in the shapes the OpenAI API (and its clients) use."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tttv2.serve.runtime import TokenEvent

# The runtime's finish reasons -> the API's ("context": the context filled up).
FINISH_REASONS = {"stop": "stop", "length": "length", "context": "length", "abort": "abort"}


def finish_reason(reason: str | None) -> str | None:
    return None if reason is None else FINISH_REASONS.get(reason, reason)


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


class CompletionLogprobs:
    """The legacy completions ``logprobs`` object, built token by token."""

    def __init__(self, token_text: Callable[[int], str]) -> None:
        self.token_text = token_text
        self.tokens: list[str] = []
        self.token_logprobs: list[float | None] = []
        self.top_logprobs: list[dict[str, float]] = []
        self.text_offset: list[int] = []
        self._offset = 0

    def add(self, events: Sequence[TokenEvent]) -> dict[str, Any]:
        """Append ``events``; return the object for just these (a stream chunk's)."""
        start = len(self.tokens)
        for e in events:
            text = self.token_text(e.token_id)
            self.tokens.append(text)
            self.token_logprobs.append(e.logprob)
            self.top_logprobs.append({self.token_text(t): lp for t, lp in e.top_logprobs})
            self.text_offset.append(self._offset)
            self._offset += len(e.text)
        return self.body(start)

    def body(self, start: int = 0) -> dict[str, Any]:
        return {
            "tokens": self.tokens[start:],
            "token_logprobs": self.token_logprobs[start:],
            "top_logprobs": self.top_logprobs[start:],
            "text_offset": self.text_offset[start:],
        }


def chat_logprobs(events: Sequence[TokenEvent], token_text: Callable[[int], str]) -> dict[str, Any]:
    """The chat ``logprobs`` object: ``{"content": [{token, logprob, bytes, top_logprobs}]}``."""

    def entry(token_id: int, logprob: float | None) -> dict[str, Any]:
        text = token_text(token_id)
        return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

    content = []
    for e in events:
        item = entry(e.token_id, e.logprob)
        item["top_logprobs"] = [entry(t, lp) for t, lp in e.top_logprobs]
        content.append(item)
    return {"content": content}
