"""StopConditions: when a request's generation ends.

A request finishes, checked after every new token in this order, with ``finish_reason``:

- ``"stop"``: the token is one of ``eos_token_ids`` (kept in ``token_ids``, left out of the
  text), or the text now contains one of ``stop_strings`` (matched across token boundaries;
  the text is cut just before the stop string; needs the engine's ``detokenize``);
- ``"length"``: ``max_new_tokens`` tokens were generated;
- ``"context"``: prompt + output reached the engine's context limit (the model's
  ``max_seq_len``, or what the KV pool holds for one sequence if that is less).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tttv2.serve.runtime.errors import InvalidParameterError


@dataclass(frozen=True)
class StopConditions:
    max_new_tokens: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    stop_strings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        m = self.max_new_tokens
        if m is not None and (not isinstance(m, int) or isinstance(m, bool) or m <= 0):
            raise InvalidParameterError(
                "StopConditions", "max_new_tokens", m, "None or an integer >= 1"
            )
        eos: tuple[object, ...] | int = self.eos_token_ids
        eos = (
            (eos,)
            if isinstance(eos, int) and not isinstance(eos, bool)
            else tuple(_iterable("eos_token_ids", eos))
        )
        if not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in eos):
            raise InvalidParameterError(
                "StopConditions", "eos_token_ids", self.eos_token_ids, "token ids >= 0"
            )
        stops: tuple[object, ...] | str = self.stop_strings
        stops = (stops,) if isinstance(stops, str) else tuple(_iterable("stop_strings", stops))
        if not all(isinstance(s, str) and s for s in stops):
            raise InvalidParameterError(
                "StopConditions", "stop_strings", self.stop_strings, "non-empty strings"
            )
        object.__setattr__(self, "eos_token_ids", eos)
        object.__setattr__(self, "stop_strings", stops)


def _iterable(field: str, value: object) -> Iterable[object]:
    if isinstance(value, Iterable):
        return value
    raise InvalidParameterError("StopConditions", field, value, "a sequence")
