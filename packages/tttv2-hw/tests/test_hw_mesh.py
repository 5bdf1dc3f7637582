"""DeviceMesh and launch(): collectives over gloo between 2 local processes, the mesh of
one, and faults (a rank that raises or dies ends the group with one error, in bounded
time)."""

from __future__ import annotations

import time

import pytest
import torch
from mesh_workers import collectives, die_on_rank_1, raise_on_rank_1, sleep_forever

from tttv2.hw.mesh import DeviceMesh, MeshConfigError, WorkerFailedError, backend_for, launch


def test_mesh_of_one_is_the_identity_and_has_no_group():
    mesh = DeviceMesh.single()
    t = torch.tensor([1.0, 2.0])
    assert mesh.all_reduce(t) is t
    assert mesh.all_gather(t) is t
    assert mesh.broadcast(t) is t
    assert mesh.broadcast_object({"a": 1}) == {"a": 1}
    assert mesh.group is None and mesh.is_single and mesh.comm_calls == 0


def test_from_env_without_world_size_is_the_mesh_of_one():
    mesh = DeviceMesh.from_env("cpu", env={})
    assert (mesh.world_size, mesh.rank, mesh.group) == (1, 0, None)


@pytest.mark.parametrize(
    "env, field",
    [
        ({"WORLD_SIZE": "two"}, "WORLD_SIZE"),
        ({"WORLD_SIZE": "0"}, "WORLD_SIZE"),
        ({"WORLD_SIZE": "2", "RANK": "0", "MASTER_PORT": "1"}, "MASTER_ADDR"),
        ({"WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}, "RANK"),
    ],
)
def test_from_env_refuses_bad_environments_naming_the_variable(env, field):
    with pytest.raises(MeshConfigError, match=field):
        DeviceMesh.from_env("cpu", env=env)


def test_backend_per_device():
    assert backend_for("cpu") == "gloo"
    assert backend_for("cuda:1") == "nccl"
    with pytest.raises(MeshConfigError, match="device"):
        backend_for("meta")


def test_constructor_validates():
    with pytest.raises(MeshConfigError, match="rank"):
        DeviceMesh(2, 2, group=object())
    with pytest.raises(MeshConfigError, match="group"):
        DeviceMesh(2, 0)


def test_two_gloo_ranks_run_every_collective():
    out = launch(collectives, 2, timeout_s=120)
    assert [o["rank"] for o in out] == [0, 1]
    for o in out:
        assert o["world"] == 2 and o["backend"] == "gloo"
        assert o["summed"] == [3.0, 10.0]  # (1 + 2, 0 + 10)
        assert o["gathered"] == [[0.0, 1.0], [0.0, 1.0]]
        assert o["broadcast"] == [6.0]  # rank 1's value
        assert o["object"] == {"step": 0, "ids": [0]}  # rank 0's object
        assert o["calls"] == 4
    assert out[0]["env_port"] == out[1]["env_port"] != "0"


def test_a_rank_that_raises_ends_the_group_with_its_error():
    start = time.monotonic()
    with pytest.raises(
        WorkerFailedError, match="rank 1 raised RuntimeError: boom on purpose"
    ) as info:
        launch(raise_on_rank_1, 2, timeout_s=120)
    assert info.value.rank == 1
    assert time.monotonic() - start < 60  # not the 120 s timeout: the launcher saw it


def test_a_rank_that_dies_ends_the_group():
    start = time.monotonic()
    with pytest.raises(WorkerFailedError, match=r"rank 1 died \(exit code 3\)"):
        launch(die_on_rank_1, 2, timeout_s=120)
    assert time.monotonic() - start < 60


def test_a_group_past_its_timeout_is_ended():
    start = time.monotonic()
    with pytest.raises(WorkerFailedError, match="did not finish within 20 s"):
        launch(sleep_forever, 2, timeout_s=20)
    assert time.monotonic() - start < 45


def test_launch_validates_arguments():
    with pytest.raises(MeshConfigError, match="world_size"):
        launch(collectives, 0)
    with pytest.raises(MeshConfigError, match="device"):
        launch(collectives, 2, device="tpu")
