"""``--tp N``: run a verb with its model split over N ranks (tensor parallelism).

Local ranks: the command starts N worker processes itself (``tttv2.hw.mesh.launch``, gloo
on CPU, NCCL on ``cuda:0 .. cuda:N-1``). Across machines: each machine starts its ranks
with ``torchrun`` (which sets ``WORLD_SIZE``/``RANK``/``MASTER_ADDR``...); the command then
joins that group instead of starting workers (docs/TENSOR_PARALLEL.md).

Every rank loads its shard through the model plugin (``plugin.load(..., mesh=mesh)``: any
plugin built on ``tttv2.blocks.weights.load_hf_checkpoint`` takes it and maps its own
rename rules onto the shard loader; nothing here knows a model). Rank 0 runs the verb's
body with the engine over a :class:`~tttv2.serve.runtime.TensorParallelLeader`; the other
ranks follow it pass by pass until it stops them.

Faults end the whole group: a rank that raises or dies is reported by the launcher in one
line (:class:`~tttv2.hw.mesh.WorkerFailedError`, exit status 1); a rank that stops
answering makes the others' next collective fail after ``--tp-timeout`` seconds. Bad input
found on the ranks (a world size that does not divide the heads, a plugin that cannot
load sharded, a bad prompt) comes back as the usual one-line error, exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tttv2.cli import options
from tttv2.cli.errors import UsageError, one_line
from tttv2.cli.loading import DTYPES, check_checkpoint_folder, check_strategy
from tttv2.core.errors import InputError
from tttv2.core.model_plugins import LoadedModel, architecture_of, find_model_plugin, read_hf_config
from tttv2.serve.runtime import RequestFailedError, TensorParallelLeader, follow_leader

#: ``body(args, loaded, checkpoint, device) -> exit status``, run on rank 0 with the model
#: already wrapped for the followers (a module-level function: workers import it).
Body = Callable[[argparse.Namespace, LoadedModel, Path, torch.device], int]

#: How long the whole local group may run (generate and bench; serve runs until stopped).
RUN_TIMEOUT_S = 24 * 3600.0


def add_tp_options(
    parser: argparse.ArgumentParser, *, timeout_default: float, timeout_note: str
) -> None:
    parser.add_argument(
        "--tp",
        type=options.int_at_least(1),
        default=None,
        metavar="N",
        help="tensor parallelism: split the model over N ranks (attention heads, FFN columns, "
        "vocabulary), each its own process started by this command (gloo on CPU; on CUDA rank r "
        "uses cuda:r). N must divide the model's query and KV heads (or be a multiple of the KV "
        "heads). Under torchrun (WORLD_SIZE set) the command joins torchrun's ranks instead and "
        "--tp may be left out (docs/TENSOR_PARALLEL.md) (default: 1, no split)",
    )
    parser.add_argument(
        "--tp-timeout",
        type=options.float_in(0.0, float("inf"), low_open=True, hint="a number of seconds > 0"),
        default=timeout_default,
        metavar="S",
        help=f"with --tp: seconds a rank waits for the others in one collective before the whole "
        f"group fails{timeout_note} (default: %(default)s)",
    )


def torchrun_world() -> int:
    """``WORLD_SIZE`` from the environment (torchrun's), 1 when unset."""
    raw = os.environ.get("WORLD_SIZE", "")
    try:
        return int(raw) if raw else 1
    except ValueError:
        raise UsageError(f"WORLD_SIZE={raw!r} in the environment is not an integer") from None


def tp_size(args: argparse.Namespace) -> int:
    """The world size the command runs with: torchrun's when it started us, else ``--tp``."""
    world = torchrun_world()
    if world > 1:
        if args.tp not in (None, world):
            raise UsageError(f"--tp {args.tp}: torchrun started {world} ranks (WORLD_SIZE={world})")
        return world
    return args.tp or 1


def check_plugin_takes_mesh(checkpoint: Path, tp: int) -> None:
    """Refuse, before starting any rank, a plugin whose ``load`` cannot load a shard."""
    check_checkpoint_folder(checkpoint)
    config = read_hf_config(checkpoint)
    architecture = architecture_of(config, str(checkpoint / "config.json"))
    if "mesh" not in _load_parameters(find_model_plugin(architecture)):
        raise UsageError(
            f"--tp {tp}: the {architecture} plugin's load() does not take mesh= (plugins built on "
            "tttv2.blocks.weights.load_hf_checkpoint load sharded)"
        )


def run_tensor_parallel(
    args: argparse.Namespace,
    checkpoint: Path,
    device: torch.device,
    body: Body,
    *,
    run_timeout_s: float = RUN_TIMEOUT_S,
) -> int:
    """Run ``body`` on rank 0 of a group of ``tp_size(args)`` ranks; its exit status."""
    from tttv2.hw.mesh import DeviceMesh, launch

    tp = tp_size(args)
    check_strategy(args.strategy)
    check_plugin_takes_mesh(checkpoint, tp)
    if device.type == "cuda" and torchrun_world() == 1 and torch.cuda.device_count() < tp:
        raise UsageError(
            f"--tp {tp}: {torch.cuda.device_count()} CUDA devices here, {tp} needed (one per rank)"
        )
    if torchrun_world() > 1:  # torchrun started this process as one rank of the group
        dev = f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if device.type == "cuda" else "cpu"
        mesh = DeviceMesh.from_env(dev, timeout_s=args.tp_timeout)
        try:
            outcome = rank_main(mesh, args, checkpoint, body)
        finally:
            mesh.close()
        return outcome_status(mesh.rank, outcome)
    outcomes = launch(
        rank_main,
        tp,
        args,
        checkpoint,
        body,
        device=device.type,
        timeout_s=run_timeout_s,
        collective_timeout_s=args.tp_timeout,
    )
    for outcome in outcomes[1:]:  # bad input seen on another rank (rank 0's comes first)
        if outcome[0] == "bad_input" and outcomes[0][0] == "ok":
            return outcome_status(0, outcome)
    return outcome_status(0, outcomes[0])


def outcome_status(rank: int, outcome: tuple[Any, ...]) -> int:
    kind, value = outcome[0], outcome[1]
    if len(outcome) > 2 and outcome[2]:  # rank 0's --json output, printed here
        sys.stdout.write(outcome[2])
        sys.stdout.flush()
    if kind == "bad_input":
        raise UsageError(value)
    if kind == "failed":
        raise RequestFailedError(None, value)  # one line, exit status 1
    return int(value) if rank == 0 else 0


def rank_main(mesh: Any, args: argparse.Namespace, checkpoint: Path, body: Body) -> tuple[Any, ...]:
    """One rank: load its shard; rank 0 runs ``body``, the others follow. Bad input and
    failed requests come back as ``(kind, one line)`` after every rank has been released;
    anything else raises (the launcher ends the group and names the rank). With ``--json``
    rank 0's standard output comes back too (the launching process prints it: it is the
    one whose output a caller reads); text streams from rank 0 as it is generated."""
    try:
        loaded = load_rank(mesh, args, checkpoint)
    except InputError as exc:  # every rank sees the same input: none is left waiting
        return ("bad_input", one_line(exc))
    if mesh.rank > 0:
        follow_leader(loaded.model, mesh)
        return ("ok", 0)
    leader = TensorParallelLeader(loaded.model, mesh)
    loaded.model = leader
    out = io.StringIO()
    with (
        contextlib.redirect_stdout(out)
        if getattr(args, "json", False)
        else contextlib.nullcontext()
    ):
        try:
            outcome: tuple[Any, ...] = ("ok", body(args, loaded, checkpoint, mesh.device))
        except InputError as exc:
            outcome = ("bad_input", one_line(exc))
        except RequestFailedError as exc:
            outcome = ("failed", one_line(exc))
    leader.stop()
    return (*outcome, out.getvalue())


def load_rank(mesh: Any, args: argparse.Namespace, checkpoint: Path) -> LoadedModel:
    """This rank's shard, through the checkpoint's plugin (``load(..., mesh=mesh)``)."""
    config = read_hf_config(checkpoint)
    architecture = architecture_of(config, str(checkpoint / "config.json"))
    plugin = find_model_plugin(architecture)
    kwargs: dict[str, Any] = {"dtype": DTYPES[args.dtype], "device": mesh.device, "mesh": mesh}
    if getattr(args, "allow_nonfinite_weights", False):
        kwargs["allow_nonfinite_weights"] = True
    loaded = plugin.load(checkpoint, **kwargs)
    if getattr(loaded.model, "mesh", None) is not mesh:
        raise UsageError(
            f"--tp {mesh.world_size}: the {architecture} plugin took mesh= but returned an unsharded "
            f"{type(loaded.model).__name__}"
        )
    if args.strategy is not None:
        loaded.model.switch_strategy(args.strategy)
    loaded.model.eval()
    return loaded


def _load_parameters(plugin: Any) -> set[str]:
    params = inspect.signature(plugin.load).parameters
    names = set(params)
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        names.add("mesh")
    return names
