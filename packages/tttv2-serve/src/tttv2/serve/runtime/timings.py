"""Timings per request (time to first token, inter-token latencies) and per engine
(prefill and decode throughput). Times are ``time.perf_counter()`` seconds."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RequestTimings:
    arrival: float
    first_scheduled: float | None = None
    token_times: list[float] = field(default_factory=list)
    finished: float | None = None

    @property
    def time_to_first_token(self) -> float | None:
        return self.token_times[0] - self.arrival if self.token_times else None

    @property
    def queue_time(self) -> float | None:
        return None if self.first_scheduled is None else self.first_scheduled - self.arrival

    @property
    def inter_token_latencies(self) -> list[float]:
        t = self.token_times
        return [b - a for a, b in zip(t, t[1:], strict=False)]

    @property
    def total(self) -> float | None:
        return None if self.finished is None else self.finished - self.arrival


@dataclass
class EngineStats:
    """Counters over the engine's life. A pass mixing prefill and decode tokens has its
    time split between the two in proportion to their token counts."""

    steps: int = 0
    passes: int = 0
    prefill_tokens: int = 0
    decode_tokens: int = 0
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0
    generated_tokens: int = 0
    preemptions: int = 0
    finished_requests: int = 0
    # preemptions whose KV was discarded (swap disabled or the host pool full)
    recompute_preemptions: int = 0
    swapped_out_blocks: int = 0
    swapped_in_blocks: int = 0
    swap_seconds: float = 0.0
    failed_requests: int = 0  # requests that finished with finish_reason="error"

    def record_pass(self, prefill_tokens: int, decode_tokens: int, seconds: float) -> None:
        total = prefill_tokens + decode_tokens
        if total == 0:
            return
        self.passes += 1
        self.prefill_tokens += prefill_tokens
        self.decode_tokens += decode_tokens
        self.prefill_seconds += seconds * prefill_tokens / total
        self.decode_seconds += seconds * decode_tokens / total

    @property
    def prefill_tokens_per_s(self) -> float:
        return self.prefill_tokens / self.prefill_seconds if self.prefill_seconds else 0.0

    @property
    def decode_tokens_per_s(self) -> float:
        return self.decode_tokens / self.decode_seconds if self.decode_seconds else 0.0
