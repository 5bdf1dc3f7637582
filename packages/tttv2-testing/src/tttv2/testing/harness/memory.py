"""Memory checks: peak tensor bytes of a call, and no growth across decode steps.

On CUDA the caching allocator's statistics are used. On CPU there are none, so
:class:`TensorAllocationTracker` (a ``TorchDispatchMode``) watches every ATen op: an op
output whose storage is not one of its inputs' is a new allocation, counted until the last
tensor using that storage is freed. This counts tensor storages, not allocator internals
(kernel workspaces are invisible); run under ``torch.no_grad()`` so autograd does not keep
intermediates alive.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from tttv2.testing.metrics.report import ReportMixin


def _storage_key(t: torch.Tensor) -> tuple[int, int] | None:
    try:
        storage = t.untyped_storage()
    except (RuntimeError, NotImplementedError):  # sparse, nested, or storage-less tensors
        return None
    nbytes = storage.nbytes()
    if nbytes == 0 or t.device.type == "meta":
        return None
    return storage.data_ptr(), nbytes


class TensorAllocationTracker(TorchDispatchMode):
    """Counts bytes of tensor storages created while active, and their peak."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # TorchDispatchMode.__init__ is unannotated
        self.live_bytes = 0
        self.peak_bytes = 0
        self.total_allocated_bytes = 0
        self.num_allocations = 0
        self._refs: dict[int, list[int]] = {}  # data_ptr -> [nbytes, live tensors using it]

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch would otherwise wrap __torch_dispatch__ with torch._disable_dynamo, whose
        # first call imports all of torch._dynamo (seconds). Nothing is compiled here.
        return False

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        inputs = {k[0] for k in map(_storage_key, _tensors((args, kwargs))) if k is not None}
        fresh_copy = func is torch.ops.aten.lift_fresh.default  # torch.tensor(...) data
        for t in _tensors(out):
            self._track(t, inputs, fresh_copy)
        return out

    def _track(self, t: torch.Tensor, inputs: set[int], fresh_copy: bool) -> None:
        key = _storage_key(t)
        if key is None:
            return
        ptr, nbytes = key
        entry = self._refs.get(ptr)
        if entry is not None:
            entry[1] += 1
        elif ptr in inputs and not fresh_copy:
            return  # a view of (or in-place result on) storage allocated before tracking
        else:
            self._refs[ptr] = [nbytes, 1]
            self.live_bytes += nbytes
            self.total_allocated_bytes += nbytes
            self.num_allocations += 1
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        weakref.finalize(t, self._release, ptr)

    def _release(self, ptr: int) -> None:
        entry = self._refs.get(ptr)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del self._refs[ptr]
            self.live_bytes -= entry[0]


def _tensors(tree: Any) -> list[torch.Tensor]:
    return [x for x in tree_flatten(tree)[0] if isinstance(x, torch.Tensor)]


@dataclass(frozen=True)
class MemoryReport:
    """``peak_bytes``: most bytes allocated by the call alive at once (its inputs and
    anything allocated before it excluded); ``retained_bytes``: of those, still alive
    after the call returned and its result was dropped (caches, leaks)."""

    device: str
    peak_bytes: int
    retained_bytes: int
    total_allocated_bytes: int | None
    num_allocations: int | None

    def __str__(self) -> str:
        extra = (
            f", {self.num_allocations} allocations totalling {_mib(self.total_allocated_bytes)}"
            if (self.num_allocations is not None)
            else ""
        )
        return f"peak {_mib(self.peak_bytes)}, retained {_mib(self.retained_bytes)} ({self.device}{extra})"


def _mib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**20:.3f} MiB"


def _is_cuda(device: torch.device | str) -> bool:
    return torch.device(device).type == "cuda"


def peak_memory(fn: Callable[[], Any], *, device: torch.device | str = "cpu") -> MemoryReport:
    """Peak bytes of the tensors a zero-argument callable allocates (see module doc)."""
    if _is_cuda(device):
        dev = torch.device(device)
        torch.cuda.synchronize(dev)
        gc.collect()
        before = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        result = fn()
        torch.cuda.synchronize(dev)
        peak = torch.cuda.max_memory_allocated(dev) - before
        del result
        gc.collect()
        retained = torch.cuda.memory_allocated(dev) - before
        return MemoryReport("cuda", peak, retained, None, None)
    tracker = TensorAllocationTracker()
    with tracker:
        result = fn()
        del result
        gc.collect()
    return MemoryReport(
        "cpu",
        tracker.peak_bytes,
        tracker.live_bytes,
        tracker.total_allocated_bytes,
        tracker.num_allocations,
    )


@dataclass(frozen=True, kw_only=True)
class GrowthReport(ReportMixin):
    passed: bool
    live_bytes: tuple[int, ...]  # after each step, warmup included
    warmup: int
    growth_bytes: int
    tolerance_bytes: int
    message: str


def check_no_memory_growth(
    step: Callable[[int], Any],
    *,
    steps: int = 8,
    warmup: int = 2,
    tolerance_bytes: int = 0,
    device: torch.device | str = "cpu",
) -> GrowthReport:
    """Run ``step(i)`` ``warmup + steps`` times (dropping each result) and check that the
    bytes of live tensors after the last step exceed those after warmup by at most
    ``tolerance_bytes``. A decode step writing into a preallocated KV cache passes;
    one that appends to a list, or caches per call, does not.

    The garbage collector runs after warmup and after the last step (the two numbers
    compared); ``live_bytes`` in between are taken without it (reference cycles not yet
    collected may show there)."""
    if steps < 1 or warmup < 1:
        raise ValueError(f"steps and warmup must be >= 1, got steps={steps}, warmup={warmup}")
    live: list[int] = []
    if _is_cuda(device):
        dev = torch.device(device)
        for i in range(warmup + steps):
            step(i)
            torch.cuda.synchronize(dev)
            if i == warmup - 1 or i == warmup + steps - 1:
                gc.collect()
            live.append(torch.cuda.memory_allocated(dev))
    else:
        with TensorAllocationTracker() as tracker:
            for i in range(warmup + steps):
                step(i)
                if i == warmup - 1 or i == warmup + steps - 1:
                    gc.collect()
                live.append(tracker.live_bytes)
    growth = live[-1] - live[warmup - 1]
    passed = growth <= tolerance_bytes
    per_step = [b - a for a, b in zip(live[warmup - 1 : -1], live[warmup:], strict=True)]
    message = (
        f"live tensor bytes {'stayed within' if passed else 'grew beyond'} {tolerance_bytes} B over {steps} steps "
        f"after {warmup} warmup step(s): growth {growth} B; per-step changes {per_step}"
    )
    return GrowthReport(
        passed=passed,
        live_bytes=tuple(live),
        warmup=warmup,
        growth_bytes=growth,
        tolerance_bytes=tolerance_bytes,
        message=message,
    )
