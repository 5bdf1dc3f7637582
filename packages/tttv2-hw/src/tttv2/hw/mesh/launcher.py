"""launch(): run a function on N local ranks, each a process with its own DeviceMesh.

The single-machine launcher (``torchrun`` serves several machines): N processes started
with ``torch.multiprocessing`` (forked from a fork server that imported torch once, or
spawned where there is none), ``MASTER_ADDR=127.0.0.1`` and a free port the OS
chose, each calling ``fn(mesh, *args)`` and sending back its return value (pickled; keep
it small: tensors travel by value). The parent watches its children: the first rank that
raises or dies ends the whole group (the others are terminated, then killed) and
:class:`~tttv2.hw.mesh.errors.WorkerFailedError` names it with its traceback; a group not
done within ``timeout_s`` is ended the same way. Collectives inside the workers are bounded
by the process group's own timeout as well, so nothing waits for ever.

``fn`` must be importable by name (a module-level function): spawned processes import it.
"""

from __future__ import annotations

import os
import pickle
import queue
import socket
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.multiprocessing as mp

from tttv2.hw.mesh.errors import MeshConfigError, WorkerFailedError
from tttv2.hw.mesh.mesh import DeviceMesh

#: Seconds a terminated worker gets before it is killed.
GRACE_S = 3.0
#: Seconds the other ranks' reports are awaited once one rank failed.
SETTLE_S = 1.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the OS reports free on ``host`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def launch(
    fn: Callable[..., Any],
    world_size: int,
    *args: Any,
    device: str = "cpu",
    timeout_s: float = 300.0,
    collective_timeout_s: float | None = None,
    threads_per_rank: int | None = None,
) -> list[Any]:
    """Run ``fn(mesh, *args)`` on ``world_size`` local ranks; their return values in rank
    order. ``device``: ``"cpu"`` (gloo) or ``"cuda"`` (NCCL, rank ``r`` on ``cuda:r``).
    ``timeout_s`` bounds the whole run; ``collective_timeout_s`` (default ``timeout_s``)
    each collective. ``threads_per_rank``: torch's intra-op threads in each worker (default:
    the usable cores divided among the ranks, at least 1)."""
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise MeshConfigError("world_size", world_size, "an integer >= 1")
    if not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
        raise MeshConfigError("timeout_s", timeout_s, "a number of seconds > 0")
    if device not in ("cpu", "cuda"):
        raise MeshConfigError("device", device, "'cpu' or 'cuda'")
    if threads_per_rank is None:
        threads_per_rank = max(1, len(os.sched_getaffinity(0)) // world_size)
    ctx = _context(fn)
    results: Any = ctx.Queue()
    port = free_port()
    procs = []
    for rank in range(world_size):
        env = {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "WORLD_SIZE": str(world_size),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
        }
        dev = f"cuda:{rank}" if device == "cuda" else "cpu"
        p = ctx.Process(
            target=_worker,
            args=(fn, args, env, dev, collective_timeout_s or timeout_s, threads_per_rank, results),
            name=f"tttv2-rank{rank}",
            daemon=True,
        )
        p.start()
        procs.append(p)
    try:
        return _collect(procs, results, world_size, time.monotonic() + timeout_s, timeout_s)
    finally:
        _end(procs)
        results.close()


def _context(fn: Callable[..., Any]) -> Any:
    """Workers are forked from a fork server that imported torch once per parent process
    (a spawned worker re-imports torch: seconds to tens of seconds on a small host);
    spawn where fork servers do not exist."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    preload = ["torch", __name__]
    if fn.__module__ not in ("__main__", "__mp_main__"):
        preload.append(fn.__module__)
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(preload)
    return ctx


def _worker(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    env: dict[str, str],
    device: str,
    collective_timeout_s: float,
    threads: int,
    results: Any,
) -> None:
    rank = int(env["RANK"])
    os.environ.update(env)
    torch.set_num_threads(threads)
    try:
        mesh = DeviceMesh.from_env(device, timeout_s=collective_timeout_s)
        value = fn(mesh, *args)
        results.put(("ok", rank, pickle.dumps(value)))
        mesh.close()
    except BaseException as exc:  # reported to the parent, which ends the group
        results.put(("error", rank, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
        raise SystemExit(1) from None
    results.close()
    results.join_thread()


def _collect(
    procs: list[Any], results: Any, world: int, deadline: float, timeout_s: float
) -> list[Any]:
    values: dict[int, Any] = {}
    errors: dict[int, str] = {}
    exited_at: dict[int, float] = {}
    while len(values) < world:
        _drain(results, values, errors, wait=0.05)
        if errors or any(p.exitcode not in (None, 0) for p in procs):
            raise _failure(procs, results, values, errors)
        now = time.monotonic()
        for rank, p in enumerate(procs):
            if (
                rank not in values
                and p.exitcode == 0
                and now - exited_at.setdefault(rank, now) > 5.0
            ):
                raise WorkerFailedError(rank, "exited without returning a result")
        if now > deadline:
            missing = sorted(set(range(world)) - set(values))
            raise WorkerFailedError(
                None, f"did not finish within {timeout_s:g} s (ranks {missing} still running)"
            )
    return [values[r] for r in range(world)]


def _drain(results: Any, values: dict[int, Any], errors: dict[int, str], wait: float) -> None:
    try:
        status, rank, payload = results.get(timeout=wait)
    except queue.Empty:
        return
    if status == "error":
        errors.setdefault(rank, payload)
    else:
        values[rank] = pickle.loads(payload)


def _failure(
    procs: list[Any], results: Any, values: dict[int, Any], errors: dict[int, str]
) -> WorkerFailedError:
    """The group's error once something failed. A failure makes its peers fail too (their
    collectives lose the connection), so reports are gathered for a moment and the cause
    is chosen: a rank that died without a report first, else the first rank that raised."""
    settle = time.monotonic() + SETTLE_S
    while time.monotonic() < settle and len(errors) + len(values) < len(procs):
        _drain(results, values, errors, wait=0.05)
    dead = [r for r, p in enumerate(procs) if p.exitcode not in (None, 0) and r not in errors]
    others = "\n".join(f"(then rank {r}: {text.splitlines()[0]})" for r, text in errors.items())
    if dead:
        rank = dead[0]
        return WorkerFailedError(rank, f"died (exit code {procs[rank].exitcode})", others)
    rank = next(iter(errors))
    text = errors[rank]
    rest = "\n".join(
        f"(then rank {r}: {t.splitlines()[0]})" for r, t in errors.items() if r != rank
    )
    return WorkerFailedError(rank, "raised " + text.splitlines()[0], text + rest)


def _end(procs: list[Any]) -> None:
    """Terminate the workers still running, then kill those that ignore it."""
    for p in procs:
        if p.is_alive():
            p.terminate()
    stop = time.monotonic() + GRACE_S
    for p in procs:
        p.join(timeout=max(0.0, stop - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join(timeout=GRACE_S)
