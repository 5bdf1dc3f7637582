"""Prometheus metrics of one server (its own registry, so several servers in one process,
as in tests, do not share counters)."""

from __future__ import annotations

import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


class ServerMetrics:
    """What /metrics shows. The engine thread sets the gauges after every step; the
    counters and histograms are fed as tokens and requests come and go."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests_running = Gauge(
            "tttv2_requests_running", "Requests in the running batch", registry=r
        )
        self.requests_waiting = Gauge(
            "tttv2_requests_waiting", "Requests admitted and waiting to run", registry=r
        )
        self.kv_blocks_used = Gauge("tttv2_kv_blocks_used", "KV cache blocks in use", registry=r)
        self.kv_blocks_free = Gauge("tttv2_kv_blocks_free", "KV cache blocks free", registry=r)
        self.tokens_per_second = Gauge(
            "tttv2_generation_tokens_per_second",
            f"Generated tokens per second over the last {window_s:g} s",
            registry=r,
        )
        self.generated_tokens = Counter("tttv2_generation_tokens", "Generated tokens", registry=r)
        self.prompt_tokens = Counter("tttv2_prompt_tokens", "Prompt tokens admitted", registry=r)
        self.preemptions = Counter(
            "tttv2_preemptions", "Requests preempted (KV blocks ran out)", registry=r
        )
        self.requests_finished = Counter(
            "tttv2_requests_finished", "Requests finished, by reason", ["finish_reason"], registry=r
        )
        self.requests_rejected = Counter(
            "tttv2_requests_rejected", "Requests refused because the queue was full", registry=r
        )
        self.time_to_first_token = Histogram(
            "tttv2_time_to_first_token_seconds",
            "From the HTTP request's arrival to its first generated token",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inter_token_latency = Histogram(
            "tttv2_inter_token_latency_seconds",
            "Between consecutive tokens of one request",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._window_s = window_s
        self._recent: deque[tuple[float, int]] = deque()

    def record_tokens(self, count: int, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        if count:
            self.generated_tokens.inc(count)
            self._recent.append((now, count))
        while self._recent and self._recent[0][0] < now - self._window_s:
            self._recent.popleft()
        self.tokens_per_second.set(sum(n for _, n in self._recent) / self._window_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
