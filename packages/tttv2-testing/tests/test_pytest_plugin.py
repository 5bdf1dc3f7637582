"""The pytest plugin, exercised in inner pytest runs (pytester): the entry point loads it,
fixtures parametrise and skip as documented, markers are registered."""

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture
def run(pytester):
    def run(source: str, *args: str):
        pytester.makepyfile(test_inner=source)
        # hypothesis' own plugin costs seconds per inner session and is not needed here
        return pytester.runpytest_inprocess(
            "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-rs", *args
        )

    return run


def test_plugin_is_loaded_from_its_entry_point(pytester):
    result = pytester.runpytest_inprocess(
        "--trace-config", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--co"
    )
    result.stdout.fnmatch_lines(["*tttv2*tttv2/testing/pytest_plugin.py*"])


def test_device_fixture_runs_cpu_and_skips_cuda_with_reason(run):
    import torch

    result = run(
        """
        import torch
        def test_where(device):
            assert isinstance(device, torch.device)
            assert torch.zeros(1, device=device).device.type == device.type
        """
    )
    if torch.cuda.is_available():
        result.assert_outcomes(passed=2)
    else:
        result.assert_outcomes(passed=1, skipped=1)
        result.stdout.fnmatch_lines(["*SKIPPED*CUDA not available*"])


def test_dtype_matrix_and_tolerance_presets(run):
    result = run(
        """
        import torch
        SEEN = []
        def test_matrix(dtype, tolerance):
            SEEN.append(dtype)
            assert tolerance.name == {torch.float32: "fp32", torch.bfloat16: "bf16"}[dtype]
        def test_both_seen():
            pass
        """,
        "-v",
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*test_matrix?fp32?*PASSED*", "*test_matrix?bf16?*PASSED*"])


def _printed(result, tag):
    return [line[line.index(tag) :] for line in result.outlines if tag in line]


def test_seed_is_deterministic_per_test(run):
    source = """
        import random
        import numpy as np
        import torch
        from tttv2.testing.pytest_plugin import seed_for

        def test_one(seed, request):
            assert seed == seed_for(request.node.nodeid, request.config.getoption("--tttv2-seed"))
            values = (random.random(), float(np.random.rand()), float(torch.rand(())))
            random.seed(seed); np.random.seed(seed); torch.manual_seed(seed)
            assert values == (random.random(), float(np.random.rand()), float(torch.rand(())))
            print("VALUES", seed, values)

        def test_other(seed):
            print("OTHER", seed)
        """
    first = run(source, "-s")
    first.assert_outcomes(passed=2)
    values, other = _printed(first, "VALUES"), _printed(first, "OTHER")
    assert len(values) == len(other) == 1
    assert values[0].split()[1] != other[0].split()[1]  # each test its own seed
    assert _printed(run(source, "-s"), "VALUES") == values  # same on every run
    assert _printed(run(source, "-s", "--tttv2-seed", "7"), "VALUES") != values


def test_seed_fixture_restores_global_state(run):
    result = run(
        """
        import torch
        STATE = {}
        def test_a():
            torch.manual_seed(99)
            STATE["before"] = torch.random.get_rng_state()
        def test_b(seed):
            torch.rand(5)
        def test_c():
            assert torch.equal(torch.random.get_rng_state(), STATE["before"])
        """
    )
    result.assert_outcomes(passed=3)


def test_markers_are_registered_and_gpu_tests_skip_with_reason(run):
    import torch

    result = run(
        """
        import pytest
        @pytest.mark.slow
        def test_slow():
            pass
        @pytest.mark.gpu
        def test_gpu():
            import torch
            assert torch.cuda.is_available()
        """,
        "--strict-markers",
    )
    if torch.cuda.is_available():
        result.assert_outcomes(passed=2)
    else:
        result.assert_outcomes(passed=1, skipped=1)
        result.stdout.fnmatch_lines(["*SKIPPED*CUDA not available (test marked gpu)*"])


def test_slow_tests_can_be_deselected(run):
    result = run(
        """
        import pytest
        @pytest.mark.slow
        def test_slow():
            pass
        def test_fast():
            pass
        """,
        "-m",
        "not slow",
    )
    result.assert_outcomes(passed=1, deselected=1)


def test_speed_compare_fixture_reports_ratio_to_pytest_benchmark(run, monkeypatch):
    monkeypatch.delenv(
        "PYTEST_XDIST_WORKER", raising=False
    )  # else pytest-benchmark disables itself
    result = run(
        """
        def test_speed(speed_compare, benchmark):
            report = speed_compare(lambda: sum(range(2000)), lambda: sum(range(10)), repeats=3, warmup=1,
                                   name="big", baseline_name="small")
            assert report.ratio > 0 and len(report.times_s) == 3
            assert benchmark.extra_info["ratio"] == report.ratio
            assert benchmark.extra_info["baseline_median_s"] == report.baseline_median_s
            assert benchmark.stats is not None  # the block itself went through pytest-benchmark
        """,
        "-s",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*big: median * vs small *ratio*", "*benchmark: 1 tests*"])


PROFILE_PROBE = """
import os
from tttv2.hw import default_device

def test_profile(request):
    want = request.config.getoption("--tttv2-device-profile")
    if want == "host":
        assert "TTTV2_DEVICE_PROFILE" not in os.environ
        assert default_device().source == "detected"
    else:
        assert os.environ["TTTV2_DEVICE_PROFILE"] == want
        print("PREFERRED", want, default_device().preferred_dtype)
"""


@pytest.mark.parametrize(
    ("args", "line"),
    [
        ((), "PREFERRED cpu:avx2 float32"),  # the default pin, whatever the host
        (("--tttv2-device-profile", "cpu:avx512-bf16"), "PREFERRED cpu:avx512-bf16 bfloat16"),
        (("--tttv2-device-profile", "cpu:generic"), "PREFERRED cpu:generic float32"),
        (("--tttv2-device-profile", "host"), None),
    ],
)
def test_the_session_runs_under_one_named_device_profile(run, monkeypatch, args, line):
    import os

    monkeypatch.setenv("TTTV2_DEVICE_PROFILE", "cpu:amx")  # what the user's shell may hold
    result = run(PROFILE_PROBE, "-s", *args)
    result.assert_outcomes(passed=1)
    if line:
        result.stdout.fnmatch_lines([f"*{line}*"])
    result.stdout.fnmatch_lines(["*device profile*--tttv2-device-profile*"])
    assert os.environ["TTTV2_DEVICE_PROFILE"] == "cpu:amx"  # restored after the inner session


@pytest.mark.parametrize(
    ("option", "env", "cores", "expected"),
    [
        ("auto", {"PYTEST_XDIST_WORKER": "gw0", "PYTEST_XDIST_WORKER_COUNT": "2"}, 2, 1),
        ("auto", {"PYTEST_XDIST_WORKER": "gw1", "PYTEST_XDIST_WORKER_COUNT": "4"}, 16, 4),
        ("auto", {"PYTEST_XDIST_WORKER": "gw0", "PYTEST_XDIST_WORKER_COUNT": "8"}, 2, 1),
        ("auto", {}, 2, None),  # no xdist: torch's own default stands
        ("auto", {"PYTEST_XDIST_WORKER": "gw0", "PYTEST_XDIST_WORKER_COUNT": "2",
                  "OMP_NUM_THREADS": "2"}, 2, None),  # the user's choice stands
        ("3", {}, 2, 3),
    ],
)  # fmt: skip
def test_worker_threads_share_the_cores_between_xdist_workers(option, env, cores, expected):
    from tttv2.testing.pytest_plugin import worker_threads

    assert worker_threads(option, env, cores) == expected


@pytest.mark.parametrize("option", ["0", "many", "-1"])
def test_worker_threads_refuses_what_is_not_a_count(option):
    from tttv2.testing.pytest_plugin import worker_threads

    with pytest.raises(pytest.UsageError, match="--tttv2-threads"):
        worker_threads(option, {}, 2)


def test_xdist_workers_run_torch_with_their_share_of_the_cores(pytester):
    import os
    import sys

    pytester.makepyfile(
        test_inner="""
import os, subprocess, sys, torch

def test_threads():
    child = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                           capture_output=True, text=True, check=True).stdout.strip()
    with open("threads.txt", "w") as out:  # an xdist worker's stdout is not shown
        out.write(f"{torch.get_num_threads()} {os.environ['OMP_NUM_THREADS']} {child}")
"""
    )
    env_before = os.environ.pop("OMP_NUM_THREADS", None)
    try:
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-n", "2"
        )
    finally:
        if env_before is not None:
            os.environ["OMP_NUM_THREADS"] = env_before
    result.assert_outcomes(passed=1)
    # torch in the worker, the variable, and a subprocess of the worker: all the worker's share
    share = max(1, len(os.sched_getaffinity(0)) // 2) if sys.platform == "linux" else None
    written = (pytester.path / "threads.txt").read_text()
    assert written == f"{share} {share} {share}" if share else len(set(written.split())) == 1
