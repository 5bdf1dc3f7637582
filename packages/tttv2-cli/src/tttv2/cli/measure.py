"""Measurements for ``tttv2 bench``: peak memory of a phase and memory bandwidth."""

from __future__ import annotations

import ctypes
import gc
import os
import statistics
import threading
import time
from types import TracebackType

import torch

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def release_free_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``), so
    a following resident-memory measurement does not reuse a previous phase's pages."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class PeakMemory:
    """Peak memory of a phase that runs an already loaded model: ``resident_bytes`` (its
    weights, counted by the caller) plus the most the phase added, in bytes.

    On CUDA the addition is ``torch.cuda.max_memory_allocated`` above what was allocated at
    the start. On CPU it is the process's resident set size, sampled every millisecond by a
    thread, above its value at the start (``None`` where ``/proc`` is not available)."""

    def __init__(self, device: torch.device, resident_bytes: int = 0) -> None:
        self.device = device
        self.resident_bytes = resident_bytes
        self.peak_bytes: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = 0
        self._max = 0

    def __enter__(self) -> PeakMemory:
        release_free_memory()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
            return self
        start = _rss_bytes()
        if start is not None:
            self._start = self._max = start
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            rss = _rss_bytes()
            if rss is not None and rss > self._max:
                self._max = rss

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            added = torch.cuda.max_memory_allocated(self.device) - self._start
            self.peak_bytes = self.resident_bytes + added
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()
            rss = _rss_bytes() or 0
            self.peak_bytes = self.resident_bytes + max(self._max, rss) - self._start


def stream_bandwidth(device: torch.device, nbytes: int = 256 * 1024**2, repeats: int = 5) -> float:
    """Memory bandwidth in bytes/s from a torch copy of ``nbytes`` (STREAM "copy": each
    copy reads and writes ``nbytes``, so it moves ``2 * nbytes``). Median of ``repeats``."""
    n = nbytes // 4
    src = torch.ones(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)  # first touch: page faults are not bandwidth
    rates = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        dst.copy_(src)
        _sync(device)
        rates.append(2 * n * 4 / (time.perf_counter() - t0))
    del src, dst
    return statistics.median(rates)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
