"""SamplingParams: how the next token is chosen from the logits.

The distribution is built in this order (each step renormalises what the previous kept):

1. penalties on the raw logits: ``repetition_penalty`` (CTRL; tokens seen in the prompt or
   the output: a positive logit is divided by it, a negative one multiplied),
   ``frequency_penalty`` (minus penalty x times the token occurred in the output) and
   ``presence_penalty`` (minus penalty once if it occurred in the output);
2. ``temperature``: 0 means greedy (argmax of the penalised logits; the filters below are
   then irrelevant), otherwise logits / temperature;
3. ``top_k``: keep the k most likely tokens (0: off; ties with the k-th are kept);
4. ``top_p``: keep the smallest set of most likely tokens whose mass reaches p (1: off);
5. ``min_p``: keep tokens whose probability is at least min_p x the largest (0: off).

``seed`` gives the request its own random generator, so its samples do not depend on what
else shares the batch.

``logprobs`` does not change which token is chosen: when set (``LLMEngine`` only), each
:class:`TokenEvent` carries the log-probability of its token under the model's distribution
(log-softmax of the raw logits, before penalties and temperature) and the ``logprobs`` most
likely tokens with theirs (0: the chosen token's only; None: off).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tttv2.serve.runtime.errors import InvalidParameterError

#: The most top tokens ``logprobs`` may ask for (the OpenAI API's limit).
MAX_LOGPROBS = 20


#: Nonzero temperatures the sampler takes: logits are divided by it in float32, so a tiny
#: one overflows (1e-300 becomes 0, the logits inf, the probabilities NaN).
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-2, 1e2
TEMPERATURE_HINT = f"0 (greedy) or a float in [{MIN_TEMPERATURE}, {MAX_TEMPERATURE:g}]"


def _number(
    name: str, value: object, lo: float, hi: float, lo_open: bool, hi_open: bool, hint: str
) -> None:
    ok = False
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        raise InvalidParameterError("SamplingParams", name, value, hint)


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    logprobs: int | None = None

    def __post_init__(self) -> None:
        if (
            isinstance(self.temperature, bool) or self.temperature != 0
        ):  # 1e-300 -> 0 in float32 -> inf logits
            _number(
                "temperature",
                self.temperature,
                MIN_TEMPERATURE,
                MAX_TEMPERATURE,
                False,
                False,
                TEMPERATURE_HINT,
            )
        if not isinstance(self.top_k, int) or isinstance(self.top_k, bool) or self.top_k < 0:
            raise InvalidParameterError(
                "SamplingParams", "top_k", self.top_k, "an integer >= 0 (0 = off)"
            )
        _number("top_p", self.top_p, 0.0, 1.0, True, False, "a float in (0, 1] (1 = off)")
        _number("min_p", self.min_p, 0.0, 1.0, False, False, "a float in [0, 1] (0 = off)")
        _number(
            "repetition_penalty",
            self.repetition_penalty,
            0.0,
            math.inf,
            True,
            True,
            "a finite float > 0 (1 = off)",
        )
        _number(
            "presence_penalty",
            self.presence_penalty,
            -2.0,
            2.0,
            False,
            False,
            "a float in [-2, 2] (0 = off)",
        )
        _number(
            "frequency_penalty",
            self.frequency_penalty,
            -2.0,
            2.0,
            False,
            False,
            "a float in [-2, 2] (0 = off)",
        )
        if self.seed is not None and (
            not isinstance(self.seed, int)
            or isinstance(self.seed, bool)
            or not 0 <= self.seed < 2**63
        ):
            raise InvalidParameterError(
                "SamplingParams", "seed", self.seed, "None or an integer in [0, 2**63)"
            )
        lp = self.logprobs
        if lp is not None and (
            not isinstance(lp, int) or isinstance(lp, bool) or not 0 <= lp <= MAX_LOGPROBS
        ):
            raise InvalidParameterError(
                "SamplingParams",
                "logprobs",
                lp,
                f"None (off) or an integer in [0, {MAX_LOGPROBS}] (top tokens returned)",
            )

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @property
    def has_penalties(self) -> bool:
        return (
            self.repetition_penalty != 1.0
            or self.presence_penalty != 0.0
            or self.frequency_penalty != 0.0
        )
