"""The device mesh for multi-process (tensor-parallel) runs, on torch.distributed.

:class:`DeviceMesh` (world size, rank, local rank, backend per device, timed collectives;
the mesh of one costs nothing), :func:`launch` (N local worker processes on 127.0.0.1 with
a free port, the group ended with :class:`WorkerFailedError` when a rank raises or dies)
and :func:`backend_for` (gloo on CPU, NCCL on CUDA). Several machines: ``torchrun`` and
:meth:`DeviceMesh.from_env` (docs/TENSOR_PARALLEL.md).
"""

from tttv2.hw.mesh.backend import BACKENDS, backend_for
from tttv2.hw.mesh.errors import MeshConfigError, WorkerFailedError
from tttv2.hw.mesh.launcher import free_port, launch
from tttv2.hw.mesh.mesh import DEFAULT_TIMEOUT_S, DeviceMesh

__all__ = [
    "BACKENDS",
    "DEFAULT_TIMEOUT_S",
    "DeviceMesh",
    "MeshConfigError",
    "WorkerFailedError",
    "backend_for",
    "free_port",
    "launch",
]
