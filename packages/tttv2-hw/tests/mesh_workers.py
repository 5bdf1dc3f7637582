"""Worker functions for the mesh tests (module level: spawned ranks import them)."""

from __future__ import annotations

import os
import time

import torch


def collectives(mesh):
    """Every collective once, with rank-dependent inputs."""
    r = mesh.rank
    summed = mesh.all_reduce(torch.tensor([1.0 + r, 10.0 * r]))
    gathered = mesh.all_gather(torch.full((2, 1), float(r)), dim=1)
    b = mesh.broadcast(torch.tensor([float(r + 5)]), src=1)
    obj = mesh.broadcast_object({"step": r, "ids": [r]}, src=0)
    mesh.barrier()
    return {
        "rank": r,
        "world": mesh.world_size,
        "backend": mesh.backend,
        "summed": summed.tolist(),
        "gathered": gathered.tolist(),
        "broadcast": b.tolist(),
        "object": obj,
        "calls": mesh.comm_calls,
        "env_port": os.environ["MASTER_PORT"],
    }


def raise_on_rank_1(mesh):
    mesh.barrier()
    if mesh.rank == 1:
        raise RuntimeError("boom on purpose")
    mesh.all_reduce(torch.ones(1))  # rank 0 waits here for a peer that is gone
    return "unreachable"


def die_on_rank_1(mesh):
    mesh.barrier()
    if mesh.rank == 1:
        os._exit(3)
    mesh.all_reduce(torch.ones(1))
    return "unreachable"


def sleep_forever(mesh):
    time.sleep(3600)
