"""The one thread that owns the engine: it admits and aborts requests between steps and
steps the continuous batch; HTTP handlers (on the event loop) talk to it through a command
queue and read their tokens from per-request :class:`TokenStream` queues.

The engine is not thread-safe, so every call into it happens on this thread. Capacity is
bounded: at most ``max_num_seqs`` requests run and ``max_queue`` wait; beyond that
:meth:`EngineLoop.submit` raises :class:`QueueFullError` (HTTP 429).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tttv2.serve.runtime import LLMEngine, Request, TokenEvent
from tttv2.serve.server.errors import QueueFullError, ShuttingDownError
from tttv2.serve.server.metrics import ServerMetrics


@dataclass(frozen=True)
class Aborted:
    """The last item of a stream whose request was aborted (disconnect or shutdown)."""

    request_id: Hashable
    reason: str


class TokenStream:
    """The tokens of one request, handed from the engine thread to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[Any] = asyncio.Queue()

    def put(self, item: TokenEvent | Aborted | BaseException) -> None:
        """Called on the engine thread."""
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            pass

    async def get(self) -> TokenEvent | Aborted | BaseException:
        return await self._queue.get()

    def get_nowait(self) -> TokenEvent | Aborted | BaseException | None:
        """The next item if one is already there, else None."""
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None


@dataclass
class _Tracked:
    stream: TokenStream
    received: float
    last_token_time: float | None = None
    admitted: bool = False


class EngineLoop:
    def __init__(
        self, engine: LLMEngine, metrics: ServerMetrics, *, max_queue: int, retry_after_s: int = 1
    ) -> None:
        if not isinstance(max_queue, int) or max_queue < 0:
            raise ValueError(f"max_queue={max_queue!r} is invalid: expected an integer >= 0")
        self.engine = engine
        self.metrics = metrics
        self.capacity = engine.scheduler.max_num_seqs + max_queue
        self.retry_after_s = retry_after_s
        self._cond = threading.Condition()
        self._commands: deque[tuple[str, Any]] = deque()
        self._tracked: dict[Hashable, _Tracked] = {}
        self._outstanding = 0
        self._admitting = True
        self._stop = False
        self._preemptions_seen = engine.stats.preemptions
        self._thread = threading.Thread(target=self._run, name="tttv2-engine", daemon=True)

    # -- called from the event loop ------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        self._update_gauges()

    @property
    def outstanding(self) -> int:
        """Requests submitted and not finished."""
        return self._outstanding

    @property
    def admitting(self) -> bool:
        return self._admitting

    def submit(self, requests: Sequence[Request], received: float) -> TokenStream:
        """Queue ``requests`` (all or none: the ``n`` choices of one HTTP request) and return
        the one stream their events arrive on (tell them apart by ``request_id``)."""
        stream = TokenStream(asyncio.get_running_loop())
        with self._cond:
            if not self._admitting:
                raise ShuttingDownError()
            if self._outstanding + len(requests) > self.capacity:
                self.metrics.requests_rejected.inc()
                raise QueueFullError(self.capacity, self.retry_after_s)
            for request in requests:
                self._commands.append(("add", (request, _Tracked(stream, received))))
            self._outstanding += len(requests)
            self._cond.notify()
        return stream

    def abort(self, request_ids: Sequence[Hashable], reason: str = "abort") -> None:
        """Abort requests (unknown or finished ones are ignored); their KV blocks are freed
        before the next step."""
        with self._cond:
            for rid in request_ids:
                self._commands.append(("abort", (rid, reason)))
            self._cond.notify()

    def stop_admitting(self) -> None:
        with self._cond:
            self._admitting = False

    def shutdown(self, timeout_s: float) -> int:
        """Stop admitting, let running requests finish for up to ``timeout_s``, abort the
        rest and stop the thread. Returns how many requests were aborted."""
        self.stop_admitting()
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while self._outstanding and time.monotonic() < deadline and self._thread.is_alive():
                self._cond.wait(timeout=min(0.05, max(0.0, deadline - time.monotonic())))
            left = list(self._tracked) + [
                c[1][0].request_id for c in self._commands if c[0] == "add"
            ]
            for rid in left:
                self._commands.append(("abort", (rid, "shutdown")))
            self._stop = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=10.0)
        return len(left)

    # -- the engine thread ----------------------------------------------------------------
    def _run(self) -> None:
        with torch.inference_mode():  # held by the engine thread, not entered by each step
            self._loop()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._commands and not self._stop and not self.engine.has_unfinished():
                    self._cond.wait(timeout=1.0)
                    self.metrics.record_tokens(0)
                commands = list(self._commands)
                self._commands.clear()
                stop = self._stop
            for kind, payload in commands:
                if kind == "add":
                    self._add(*payload)
                else:
                    self._abort(*payload)
            if commands:
                self._update_gauges()
            if stop:
                return
            if self.engine.has_unfinished():
                try:
                    events = self.engine.step()
                except Exception as exc:  # a model failure: fail every request, keep serving
                    self._fail_all(exc)
                    continue
                self._deliver(events)
                self._update_gauges()

    def _add(self, request: Request, tracked: _Tracked) -> None:
        rid = request.request_id
        try:
            self.engine.add_request(request)
        except Exception as exc:  # validated by the handler already; report anything else
            tracked.stream.put(exc)
            self._finished(rid, None)
            return
        tracked.admitted = True
        self._tracked[rid] = tracked
        self.metrics.prompt_tokens.inc(len(request.prompt_ids))

    def _abort(self, rid: Hashable, reason: str) -> None:
        tracked = self._tracked.get(rid)
        if tracked is None:
            return
        self.engine.abort(rid)
        self.engine.pop_output(rid)
        tracked.stream.put(Aborted(rid, reason))
        self._finished(rid, "abort")

    def _deliver(self, events: list[TokenEvent]) -> None:
        now = time.perf_counter()
        for event in events:
            tracked = self._tracked.get(event.request_id)
            if tracked is None:
                continue
            if tracked.last_token_time is None:
                self.metrics.time_to_first_token.observe(max(0.0, event.time - tracked.received))
            else:
                self.metrics.inter_token_latency.observe(
                    max(0.0, event.time - tracked.last_token_time)
                )
            tracked.last_token_time = event.time
            tracked.stream.put(event)
            if event.finished:
                self.engine.pop_output(event.request_id)
                self._finished(event.request_id, event.finish_reason)
        self.metrics.record_tokens(len(events), now)

    def _fail_all(self, exc: BaseException) -> None:
        for rid, tracked in list(self._tracked.items()):
            try:
                self.engine.abort(rid)
                self.engine.pop_output(rid)
            except Exception:  # noqa: BLE001 - the engine is already in trouble
                pass
            tracked.stream.put(exc)
            self._finished(rid, "error")

    def _finished(self, rid: Hashable, reason: str | None) -> None:
        self._tracked.pop(rid, None)
        if reason is not None:
            self.metrics.requests_finished.labels(finish_reason=reason).inc()
        with self._cond:
            self._outstanding -= 1
            self._cond.notify_all()

    def _update_gauges(self) -> None:
        scheduler, blocks = self.engine.scheduler, self.engine.runner.blocks
        self.metrics.requests_running.set(len(scheduler.running))
        with self._cond:
            pending = sum(1 for kind, _ in self._commands if kind == "add")
        self.metrics.requests_waiting.set(len(scheduler.waiting) + pending)
        free = self.engine.num_free_blocks
        self.metrics.kv_blocks_free.set(free)
        self.metrics.kv_blocks_used.set(blocks.num_blocks - free)
        preemptions = self.engine.stats.preemptions
        if preemptions > self._preemptions_seen:
            self.metrics.preemptions.inc(preemptions - self._preemptions_seen)
        self._preemptions_seen = preemptions
