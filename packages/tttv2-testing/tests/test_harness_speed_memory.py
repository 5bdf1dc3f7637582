"""Relative timing and memory measurements: reports are consistent and detect what they
claim to detect (no absolute time is asserted anywhere)."""

import pytest
import torch

from tttv2.testing.harness import (
    SpeedReport,
    TensorAllocationTracker,
    check_no_memory_growth,
    compare_speed,
    peak_memory,
)

F32 = 4


def test_compare_speed_reports_medians_and_ratio():
    calls = {"fn": 0, "base": 0}

    def fn():
        calls["fn"] += 1

    def base():
        calls["base"] += 1

    report = compare_speed(fn, base, repeats=7, warmup=2, name="block", baseline_name="baseline")
    assert calls == {"fn": 9, "base": 9}
    assert len(report.times_s) == len(report.baseline_times_s) == 7
    assert report.ratio == pytest.approx(report.median_s / report.baseline_median_s)
    assert report.speedup == pytest.approx(1 / report.ratio)
    assert "block" in str(report) and "baseline" in str(report)
    assert report.as_dict()["repeats"] == 7


def test_compare_speed_measures_each_side_with_the_given_clock():
    # A fake clock makes the measurement exact: each call of fn "takes" 3 ticks, each
    # baseline call 1 tick, and the order of calls alternates. No real time is asserted.
    clock = {"now": 0.0}
    order = []

    def fn():
        order.append("fn")
        clock["now"] += 3.0

    def base():
        order.append("base")
        clock["now"] += 1.0

    report = compare_speed(
        fn, base, repeats=4, warmup=1, timer=lambda: clock["now"], synchronize=lambda: None
    )
    assert report.times_s == (3.0,) * 4 and report.baseline_times_s == (1.0,) * 4
    assert report.ratio == 3.0 and report.speedup == pytest.approx(1 / 3) and not report.within(2.9)
    assert order[2:] == ["fn", "base", "base", "fn", "fn", "base", "base", "fn"]  # interleaved


def test_speed_report_arithmetic_on_given_times():
    report = SpeedReport("a", "b", (2.0, 4.0, 3.0), (1.0, 1.0, 1.0))
    assert (
        report.median_s == 3.0
        and report.ratio == 3.0
        and report.within(3.0)
        and not report.within(2.9)
    )


def test_compare_speed_validates_arguments():
    with pytest.raises(ValueError):
        compare_speed(lambda: None, lambda: None, repeats=0)


def test_peak_memory_counts_temporaries_and_not_inputs():
    x = torch.ones(1000)  # allocated before: not counted

    def work():
        a = x * 2  # 4000 B
        b = a + 1  # 4000 B, both alive: peak 8000 B
        del a
        return b.sum()  # 4 B

    report = peak_memory(work)
    assert report.peak_bytes == 2000 * F32
    assert report.retained_bytes == 0  # nothing survives the call once its result is dropped
    assert report.num_allocations == 3


def test_peak_memory_sees_views_keep_storage_alive():
    cache = []

    def work():
        big = torch.zeros(2000)
        cache.append(big[:10])  # a view keeps all 8000 B alive

    report = peak_memory(work)
    assert report.peak_bytes == 2000 * F32 and report.retained_bytes == 2000 * F32


def test_in_place_updates_of_preexisting_tensors_allocate_nothing():
    buf = torch.zeros(100)
    assert peak_memory(lambda: buf.add_(1.0).mul_(2.0)).peak_bytes == 0


def test_tracker_counts_factory_and_python_data_tensors():
    with TensorAllocationTracker() as tracker:
        a = torch.empty(10)
        b = torch.tensor([1.0, 2.0])
        assert tracker.live_bytes == 10 * F32 + 2 * F32
        del a, b
    assert tracker.live_bytes == 0 and tracker.peak_bytes == 12 * F32


def test_no_growth_for_a_step_writing_into_a_preallocated_cache():
    cache = torch.zeros(16, 8)

    def decode_step(i):
        cache[i % 16] = torch.randn(8)
        return cache.sum()

    report = check_no_memory_growth(decode_step, steps=6)
    assert report.passed and report.growth_bytes == 0, report.message


def test_growth_is_detected_for_a_step_that_keeps_its_outputs():
    history = []

    def leaky_step(i):
        history.append(torch.randn(8))

    report = check_no_memory_growth(leaky_step, steps=5, warmup=2)
    assert not report.passed
    assert report.growth_bytes == 5 * 8 * F32
    assert "grew" in report.message
    with pytest.raises(AssertionError, match="grew"):
        report.raise_if_failed()
    assert check_no_memory_growth(leaky_step, steps=5, tolerance_bytes=5 * 8 * F32).passed


@pytest.mark.gpu
def test_cuda_devices_are_measured_with_the_cuda_allocator():
    x = torch.ones(1024, device="cuda")
    report = peak_memory(lambda: x * 2, device="cuda")
    assert report.device == "cuda" and report.num_allocations is None  # the allocator's statistics
    assert report.peak_bytes >= 1024 * F32
    assert report.retained_bytes == 0  # the temporary was freed


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA")
def test_measuring_a_cuda_device_without_cuda_raises():
    with pytest.raises((RuntimeError, AssertionError)):
        peak_memory(lambda: None, device="cuda")
