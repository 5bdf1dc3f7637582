"""DeviceMesh: the ranks one model is split across, and the collectives between them.

The analogue of a Tenstorrent device mesh, built on ``torch.distributed``: ``world_size``
processes, this one being ``rank`` (``local_rank`` on its machine), talking through the
backend its device needs (:func:`~tttv2.hw.mesh.backend.backend_for`: gloo on CPU, NCCL on
CUDA; TCP between machines either way). Made from ``torchrun``'s environment
(:meth:`DeviceMesh.from_env`) or inside a worker of :func:`~tttv2.hw.mesh.launch`.

The single-process case is the mesh of one (:meth:`DeviceMesh.single`): no process group,
and every collective returns its input untouched, so code written for a mesh costs nothing
when it runs alone.

Every collective is timed (``comm_seconds``, ``comm_calls``): the communication share of a
step. On CUDA the time is the host's (collectives are asynchronous there); synchronise
before reading it for device time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from tttv2.hw.mesh.backend import backend_for
from tttv2.hw.mesh.errors import MeshConfigError

#: Seconds a collective may wait for the other ranks before it fails (never a hang).
DEFAULT_TIMEOUT_S = 300.0


class DeviceMesh:
    """One rank's view of the mesh. ``group`` is the process group (None when alone)."""

    def __init__(
        self,
        world_size: int = 1,
        rank: int = 0,
        local_rank: int = 0,
        device: torch.device | str = "cpu",
        group: Any = None,
    ) -> None:
        for field, value, low in (
            ("world_size", world_size, 1),
            ("rank", rank, 0),
            ("local_rank", local_rank, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise MeshConfigError(field, value, f"an integer >= {low}")
        if rank >= world_size:
            raise MeshConfigError("rank", rank, f"0 .. world_size - 1 = {world_size - 1}")
        if world_size > 1 and group is None:
            raise MeshConfigError(
                "group", None, "a process group when world_size > 1 (use from_env or launch)"
            )
        self.world_size = world_size
        self.rank = rank
        self.local_rank = local_rank
        self.device = torch.device(device)
        self.backend = backend_for(self.device)
        self.group = group
        self.comm_seconds = 0.0
        self.comm_calls = 0

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def single(cls, device: torch.device | str = "cpu") -> DeviceMesh:
        """The mesh of one: no process group, collectives are the identity."""
        return cls(1, 0, 0, device)

    @classmethod
    def from_env(
        cls,
        device: torch.device | str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        env: Mapping[str, str] | None = None,
    ) -> DeviceMesh:
        """The mesh ``torchrun`` (or :func:`~tttv2.hw.mesh.launch`) describes in the
        environment: ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``,
        ``MASTER_PORT``. Without ``WORLD_SIZE`` (or with 1) it is the mesh of one.
        ``device`` defaults to ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU.
        ``timeout_s`` bounds every collective: a rank that stops answering makes the others
        fail after it instead of waiting for ever."""
        env = os.environ if env is None else env
        world = _env_int(env, "WORLD_SIZE", 1)
        rank = _env_int(env, "RANK", 0)
        local_rank = _env_int(env, "LOCAL_RANK", rank)
        if device is None:
            device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
        device = torch.device(device)
        if world == 1:
            return cls(1, 0, local_rank, device)
        if not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
            raise MeshConfigError("timeout_s", timeout_s, "a number of seconds > 0")
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if not env.get(name):
                raise MeshConfigError(
                    name, env.get(name), f"set when WORLD_SIZE={world} (torchrun sets it)"
                )
        if not 0 <= rank < world:
            raise MeshConfigError("RANK", rank, f"0 .. WORLD_SIZE - 1 = {world - 1}")
        backend = backend_for(device)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            addr, port = env["MASTER_ADDR"], env["MASTER_PORT"]
            dist.init_process_group(
                backend,
                init_method=f"tcp://{addr}:{port}",
                rank=rank,
                world_size=world,
                timeout=timedelta(seconds=float(timeout_s)),
            )
        elif dist.get_world_size() != world or dist.get_rank() != rank:
            raise MeshConfigError(
                "WORLD_SIZE/RANK",
                (world, rank),
                f"the initialised process group's ({dist.get_world_size()}, {dist.get_rank()})",
            )
        return cls(world, rank, local_rank, device, dist.group.WORLD)

    # -- collectives -----------------------------------------------------------------------
    @property
    def is_single(self) -> bool:
        return self.world_size == 1

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the ranks, in place; returns it."""
        if self.world_size == 1:
            return tensor
        start = time.perf_counter()
        dist.all_reduce(tensor, group=self.group)
        self._count(start)
        return tensor

    def all_gather(self, tensor: torch.Tensor, dim: int = -1) -> torch.Tensor:
        """Every rank's ``tensor`` (equal shapes) concatenated along ``dim`` in rank order."""
        if self.world_size == 1:
            return tensor
        start = time.perf_counter()
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor, group=self.group)
        self._count(start)
        return torch.cat(parts, dim=dim)

    def broadcast(self, tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
        """Rank ``src``'s ``tensor`` copied into every rank's (same shape), in place."""
        if self.world_size == 1:
            return tensor
        start = time.perf_counter()
        dist.broadcast(tensor, src=src, group=self.group)
        self._count(start)
        return tensor

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """Rank ``src``'s picklable ``obj`` (e.g. a batch description) on every rank."""
        if self.world_size == 1:
            return obj
        start = time.perf_counter()
        box = [obj if self.rank == src else None]
        dist.broadcast_object_list(box, src=src, group=self.group)
        self._count(start)
        return box[0]

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier(group=self.group)

    def close(self) -> None:
        """Leave the process group (a no-op for the mesh of one)."""
        if self.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()
        self.group = None

    # -- communication accounting ------------------------------------------------------------
    def reset_comm_stats(self) -> None:
        self.comm_seconds = 0.0
        self.comm_calls = 0

    def _count(self, start: float) -> None:
        self.comm_seconds += time.perf_counter() - start
        self.comm_calls += 1

    def __repr__(self) -> str:
        return (
            f"DeviceMesh(world_size={self.world_size}, rank={self.rank}, local_rank={self.local_rank}, "
            f"device={str(self.device)!r}, backend={self.backend!r})"
        )


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise MeshConfigError(name, raw, "an integer") from None
    if value < (1 if name == "WORLD_SIZE" else 0):
        raise MeshConfigError(name, raw, ">= 1" if name == "WORLD_SIZE" else ">= 0")
    return value
