"""Tensor-parallel serving: the engine on rank 0, the same passes on every other rank.

A model split over N ranks (``tttv2.blocks.parallel.ShardedTransformerStack``) must run
every pass on every rank with the same inputs: its collectives pair up across ranks. The
engine (scheduler, block manager, sampler, stop checks) stays on rank 0 and is used
unchanged: it is handed a :class:`TensorParallelLeader`, a CausalLM that sends each call it
gets to the other ranks before running it on its own shard:

* ``new_cache(num_blocks, block_size, dtype)`` -> every rank allocates the same paged cache
  (of its own KV heads), so the block ids rank 0's block manager hands out mean the same
  slots everywhere;
* ``forward(input_ids, meta, cache)`` -> the token ids and the :class:`BatchMetadata` of the
  pass are broadcast (``mesh.broadcast_object``), then every rank runs the pass; the logits
  (gathered by the stack on every rank) are used on rank 0 only.

Ranks > 0 run :func:`follow_leader` until the leader's :meth:`TensorParallelLeader.stop`. The
mesh is anything with ``rank``, ``world_size``, ``broadcast_object(obj, src=0)`` and
``comm_seconds`` (``tttv2.hw.mesh.DeviceMesh``): this module imports no model and no
process group.

The leader's cache has no ``block_pools()``: preempted requests are recomputed, never
swapped to host memory (a swap would copy rank 0's KV heads only). A rank that dies or
stops answering makes the next collective fail on the others (bounded by the process
group's timeout); run the ranks under ``tttv2.hw.mesh.launch`` (or ``torchrun``) so the
whole group is ended with one error.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import torch

from tttv2.core.batch import BatchMetadata
from tttv2.core.modes import ExecutionMode
from tttv2.serve.runtime.interface import call_model

#: Message kinds the leader broadcasts.
CACHE, PASS, STOP = "cache", "pass", "stop"


class RankLocalCache:
    """The paged KV cache of one rank, wrapped so the engine cannot swap its blocks to host
    memory (it finds no ``block_pools()``): the other ranks' blocks would not follow."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache


@dataclass
class CommunicationStats:
    """Passes, seconds in collectives and collective calls (the metadata broadcast
    included) on the leader, per execution mode."""

    passes: int = 0
    seconds: float = 0.0
    calls: int = 0

    @property
    def seconds_per_pass(self) -> float | None:
        return self.seconds / self.passes if self.passes else None


class TensorParallelLeader:
    """Rank 0's CausalLM: ``model`` (this rank's shard) driven in lock-step with the
    followers. Attributes the engine reads (``spec``, ``vocab_size``, ``max_seq_len``,
    ``supported_modes``, ``parameters``) come from ``model``."""

    def __init__(self, model: Any, mesh: Any) -> None:
        if getattr(mesh, "rank", 0) != 0:
            raise ValueError(
                f"TensorParallelLeader runs on rank 0; this is rank {mesh.rank} (use follow_leader())"
            )
        self.model = model
        self.mesh = mesh
        self.comm: dict[ExecutionMode, CommunicationStats] = {}
        self.stopped = False

    # -- what the engine reads ---------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name in ("spec", "vocab_size", "max_seq_len", "supported_modes", "current_mode"):
            return getattr(self.__dict__["model"], name)
        raise AttributeError(name)

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        return self.model.parameters()

    # -- the CausalLM protocol -------------------------------------------------------------------
    def new_cache(
        self, num_blocks: int, block_size: int, dtype: torch.dtype | None = None
    ) -> RankLocalCache:
        self._send((CACHE, num_blocks, block_size, dtype))
        return RankLocalCache(self.model.new_cache(num_blocks, block_size, dtype=dtype))

    def forward(
        self, input_ids: torch.Tensor, meta: BatchMetadata, cache: RankLocalCache
    ) -> torch.Tensor:
        before, calls = self.mesh.comm_seconds, getattr(self.mesh, "comm_calls", 0)
        self._send((PASS, input_ids.cpu(), metadata_on(meta, torch.device("cpu"))))
        logits = call_model(self.model, input_ids, meta, cache.cache)
        stats = self.comm.setdefault(meta.mode, CommunicationStats())
        stats.passes += 1
        stats.seconds += self.mesh.comm_seconds - before
        stats.calls += getattr(self.mesh, "comm_calls", 0) - calls
        return logits

    __call__ = forward

    def stop(self) -> None:
        """Tell the followers to return (once; later calls do nothing)."""
        if not self.stopped:
            self._send((STOP,))
            self.stopped = True

    def _send(self, message: tuple[Any, ...]) -> None:
        if self.stopped:
            raise RuntimeError(
                "TensorParallelLeader: used after stop(); the followers have returned"
            )
        self.mesh.broadcast_object(message, src=0)


def follow_leader(model: Any, mesh: Any, device: torch.device | str | None = None) -> int:
    """The loop of a rank > 0: receive the leader's calls and run them on ``model`` (this
    rank's shard) until it stops; returns the number of passes run."""
    if getattr(mesh, "rank", 0) == 0:
        raise ValueError(
            "follow_leader() runs on ranks > 0; rank 0 drives the model with TensorParallelLeader"
        )
    dev = torch.device(device) if device is not None else _device_of(model)
    cache = None
    passes = 0
    while True:
        message = mesh.broadcast_object(None, src=0)
        kind = message[0]
        if kind == STOP:
            return passes
        if kind == CACHE:
            _, num_blocks, block_size, dtype = message
            cache = model.new_cache(num_blocks, block_size, dtype=dtype)
        elif kind == PASS:
            if cache is None:
                raise RuntimeError(
                    "tensor parallel: the leader sent a pass before allocating a cache"
                )
            _, input_ids, meta = message
            with torch.inference_mode():
                call_model(model, input_ids.to(dev), metadata_on(meta, dev), cache)
            passes += 1
        else:
            raise RuntimeError(f"tensor parallel: unknown message {kind!r} from the leader")


def metadata_on(meta: BatchMetadata, device: torch.device) -> BatchMetadata:
    """``meta`` with its tensors on ``device`` (itself when they are there already)."""
    moved = {}
    for f in fields(meta):
        value = getattr(meta, f.name)
        if isinstance(value, torch.Tensor) and value.device != device:
            moved[f.name] = value.to(device)
    if not moved:
        return meta
    return BatchMetadata(**{f.name: moved.get(f.name, getattr(meta, f.name)) for f in fields(meta)})


def _device_of(model: Any) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")
