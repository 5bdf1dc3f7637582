"""pytest plugin of tttv2.testing, loaded through the ``pytest11`` entry point ``tttv2``.

Fixtures:

* ``device`` - parametrised over ``cpu`` and ``cuda``; the ``cuda`` case is skipped with
  the reason "CUDA not available" where there is no GPU (shown by ``-rs``), never passed.
* ``dtype`` - parametrised over ``torch.float32`` and ``torch.bfloat16``.
* ``tolerance`` - the :class:`~tttv2.testing.tolerances.Tolerance` preset of ``dtype``.
* ``seed`` - seeds ``random``, ``numpy`` and ``torch`` with a value derived from
  ``--tttv2-seed`` and the test id (stable across runs and xdist workers) and restores
  the generators afterwards; returns the seed.
* ``tiny_checkpoint`` - factory building tiny random Hugging Face checkpoints, cached per
  configuration for the session (needs the ``hf`` extra).
* ``speed_compare`` - times a block against a baseline (:func:`compare_speed`) and, when
  pytest-benchmark is active, records the block in its table with the baseline median
  and the ratio in ``extra_info``.

Host independence: the session runs under one named tttv2-hw device profile,
``--tttv2-device-profile`` (default ``cpu:avx2``), set as ``TTTV2_DEVICE_PROFILE`` for the
test processes and every subprocess they start. Defaults tttv2-hw derives from the CPU
(compute/KV-cache dtype, native bf16 products, whether native kernels run) are then the
same on an AVX2-only laptop, an AVX-512-BF16 server and an Arm machine; run the suite with
``--tttv2-device-profile cpu:avx512-bf16`` (or ``cpu:avx512``, ``cpu:generic``) to test
another profile's selection, or ``host`` to use the detected device. A test may still
set or remove the variable itself (``monkeypatch``) to test detection.

Threads: under pytest-xdist each worker runs torch (and the native kernels' OpenMP) with
``--tttv2-threads`` intra-op threads, by default the cores this process may use divided by the
number of workers (at least 1), set as ``OMP_NUM_THREADS`` for the worker and every subprocess
it starts. Without it, ``-n auto`` on two cores runs two workers of two spinning OpenMP threads
each, and waits at every barrier for a descheduled thread: the blocks suite took 203 s instead
of 112 s that way. A user's own ``OMP_NUM_THREADS`` is left as it is.

Markers: ``slow`` (informational: slow tests run by default; deselect with
``-m "not slow"``) and ``gpu`` (skipped with a reason when CUDA is not available).

Heavy imports (torch, transformers) happen inside fixtures, so loading the plugin into an
unrelated pytest session costs nothing.
"""

from __future__ import annotations

import importlib.util
import os
import random
import sys
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

NO_CUDA = "CUDA not available"
_previous_profile = pytest.StashKey[str | None]()
#: tttv2-hw's variable forcing a device profile (tttv2.hw.device.profiles.ENV_VAR; not
#: imported so that loading the plugin does not import torch).
PROFILE_ENV = "TTTV2_DEVICE_PROFILE"
#: The profile tests run under unless --tttv2-device-profile names another.
DEFAULT_TEST_PROFILE = "cpu:avx2"
#: --tttv2-device-profile value that leaves detection to the host.
HOST_PROFILE = "host"
#: The variable OpenMP (torch's intra-op pool, the native kernels) reads its thread count from.
THREADS_ENV = "OMP_NUM_THREADS"
#: --tttv2-threads value that divides the cores between the xdist workers.
AUTO_THREADS = "auto"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tttv2")
    group.addoption(
        "--tttv2-seed",
        type=int,
        default=0,
        help="base seed of the tttv2 `seed` fixture (each test adds a hash of its id); default 0",
    )
    group.addoption(
        "--tttv2-device-profile",
        default=DEFAULT_TEST_PROFILE,
        metavar="PROFILE",
        help=(
            "tttv2-hw device profile the tests run under (sets TTTV2_DEVICE_PROFILE), so "
            "defaults derived from the CPU do not depend on the host: cpu:avx2 (default), "
            f"cpu:avx512, cpu:avx512-bf16, cpu:generic (non-x86 fallback), ...; '{HOST_PROFILE}' "
            "uses the detected device"
        ),
    )
    group.addoption(
        "--tttv2-threads",
        default=AUTO_THREADS,
        metavar="N",
        help=(
            "intra-op threads of each pytest-xdist worker (sets OMP_NUM_THREADS for it and its "
            "subprocesses, and torch.set_num_threads): a number, or 'auto' (default: the usable "
            "cores divided by the workers, at least 1; nothing is set without xdist or when "
            "OMP_NUM_THREADS is already set)"
        ),
    )


def worker_threads(option: str, env: Mapping[str, str], cores: int) -> int | None:
    """The intra-op threads a test process should use, or None to leave them alone: the
    number ``option`` names; for ``auto``, ``cores`` shared by the xdist workers
    (``PYTEST_XDIST_WORKER_COUNT``), unless this is no xdist worker or the user set
    ``OMP_NUM_THREADS``."""
    if option != AUTO_THREADS:
        try:
            threads = int(option)
        except ValueError:
            threads = 0
        if threads < 1:
            raise pytest.UsageError(f"--tttv2-threads {option}: expected a number >= 1 or 'auto'")
        return threads
    if env.get(THREADS_ENV) or "PYTEST_XDIST_WORKER" not in env:
        return None
    workers = max(1, int(env.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    return max(1, cores // workers)


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _apply_threads(threads: int) -> None:
    os.environ[THREADS_ENV] = str(threads)
    torch = sys.modules.get("torch")  # imported already (by a conftest): tell it directly
    if torch is not None:
        torch.set_num_threads(threads)


def pytest_configure(config: pytest.Config) -> None:
    threads = worker_threads(config.getoption("--tttv2-threads"), os.environ, _usable_cores())
    if threads is not None:
        _apply_threads(threads)
    profile = config.getoption("--tttv2-device-profile")
    config.stash[_previous_profile] = os.environ.get(PROFILE_ENV)
    if profile == HOST_PROFILE:
        os.environ.pop(PROFILE_ENV, None)
    else:
        os.environ[PROFILE_ENV] = profile
    config.addinivalue_line(
        "markers",
        "slow: takes more than a few seconds; runs by default, deselect with -m 'not slow'",
    )
    config.addinivalue_line(
        "markers", "gpu: needs a CUDA device; skipped with a reason when none is available"
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    if _previous_profile not in config.stash:
        return
    previous = config.stash[_previous_profile]
    if previous is None:
        os.environ.pop(PROFILE_ENV, None)
    else:
        os.environ[PROFILE_ENV] = previous


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is not None and not _cuda_available():
        pytest.skip(f"{NO_CUDA} (test marked gpu)")


def pytest_report_header(config: pytest.Config) -> str:
    profile = config.getoption("--tttv2-device-profile")
    return (
        f"tttv2: base seed {config.getoption('--tttv2-seed')} (--tttv2-seed), "
        f"device profile {profile} (--tttv2-device-profile)"
    )


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request: pytest.FixtureRequest) -> Any:
    """A ``torch.device``: cpu always; cuda when available, otherwise skipped."""
    import torch

    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip(NO_CUDA)
    return torch.device(request.param)


@pytest.fixture(params=["float32", "bfloat16"], ids=["fp32", "bf16"])
def dtype(request: pytest.FixtureRequest) -> Any:
    """``torch.float32`` and ``torch.bfloat16``."""
    import torch

    return getattr(torch, request.param)


@pytest.fixture
def tolerance(dtype: Any) -> Any:
    """The comparison preset (atol, rtol, pcc) for ``dtype``."""
    from tttv2.testing.tolerances import tolerance_for

    return tolerance_for(dtype)


def seed_for(nodeid: str, base: int = 0) -> int:
    """The seed the ``seed`` fixture gives the test ``nodeid``."""
    return (base + zlib.crc32(nodeid.encode())) % 2**31


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> Iterator[int]:
    """Seed random, numpy and torch deterministically for this test; restore them after."""
    import numpy as np
    import torch

    value = seed_for(request.node.nodeid, request.config.getoption("--tttv2-seed"))
    py_state, np_state, torch_state = (
        random.getstate(),
        np.random.get_state(),
        torch.random.get_rng_state(),
    )
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)  # also seeds every CUDA device
    try:
        yield value
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.random.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    """``tiny_checkpoint(architecture="LlamaForCausalLM", config=None, seed=0,
    max_shard_size=None, ...)`` -> :class:`tttv2.testing.hf.TinyCheckpoint`; folders are
    built once per configuration and test run (shared by xdist workers) and reused."""
    missing = [m for m in ("transformers", "tokenizers") if importlib.util.find_spec(m) is None]
    if missing:  # pragma: no cover - depends on the environment
        pytest.skip(f"{', '.join(missing)} not installed: pip install 'tttv2-testing[hf]'")
    from tttv2.testing.hf import build_tiny_checkpoint

    if os.environ.get("PYTEST_XDIST_WORKER"):  # workers of one run share the parent folder
        cache = tmp_path_factory.getbasetemp().parent / "tttv2-checkpoints"
    else:
        cache = tmp_path_factory.mktemp("tttv2-checkpoints")

    def make(
        architecture: str = "LlamaForCausalLM", config: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        return build_tiny_checkpoint(cache, architecture, config, **kwargs)

    return make


@pytest.fixture
def speed_compare(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``speed_compare(fn, baseline, name=..., baseline_name=..., repeats=...)`` ->
    :class:`SpeedReport`; with pytest-benchmark enabled also benchmarks ``fn`` (once per
    test) and stores the baseline median and ratio in ``benchmark.extra_info``."""
    from tttv2.testing.harness.speed import compare_speed

    benchmark = None
    if request.config.pluginmanager.hasplugin("benchmark"):
        benchmark = request.getfixturevalue("benchmark")

    def run(fn: Callable[[], Any], baseline: Callable[[], Any], **kwargs: Any) -> Any:
        report = compare_speed(fn, baseline, **kwargs)
        if benchmark is not None:  # when disabled (--benchmark-disable, xdist) it runs fn once
            benchmark.extra_info.update(
                {
                    "baseline": report.baseline_name,
                    "baseline_median_s": report.baseline_median_s,
                    "median_s": report.median_s,
                    "ratio": report.ratio,
                }
            )
            benchmark.pedantic(fn, rounds=len(report.times_s), warmup_rounds=1)
        print(report)
        return report

    return run
