"""The serving load benchmark runs end to end in its quick mode on a tiny model and reports
throughput and latency percentiles (it asserts no time: only that the report is complete
and consistent)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))
import bench_serving  # noqa: E402

# --quick with fewer, shorter requests; explicit options override what --quick sets
ARGV = ["--quick", "--num-requests", "4", "--prompt-len", "4:12", "--max-new-tokens", "3:5",
        "--rates", "50,inf", "--speculative-k", "2", "--greedy"]  # fmt: skip


def assert_percentiles(row: dict, name: str, qs: tuple[int, ...]) -> None:
    values = [row[f"{name}_p{q}_ms"] for q in qs]
    assert all(math.isfinite(v) and v > 0 for v in values), (name, values)
    assert values == sorted(values), (name, values)


def test_quick_run_reports_throughput_and_latency_percentiles(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "serving.json"
    assert bench_serving.main([*ARGV, "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    rows = results["load"]
    assert [r["rate"] for r in rows] == [50.0, math.inf]
    for r in [*rows, results["baseline"]]:
        assert r["requests"] == 4
        assert (
            4 * 3 <= r["output_tokens"] <= 4 * 5
        )  # greedy, no EOS: each request runs to its limit
        for key in ("output_tok_s", "req_s", "seconds"):
            assert math.isfinite(r[key]) and r[key] > 0, key
        assert_percentiles(r, "ttft", (50, 90, 99))
        assert_percentiles(r, "itl", (50, 90, 99))
        assert_percentiles(r, "e2e", (50, 99))
        assert r["e2e_p50_ms"] >= r["ttft_p50_ms"]  # every request ends after its first token
    assert results["identical"] is True  # batching does not change greedy outputs
    assert results["batching_gain"] > 0
    spec = results["speculative"]
    assert spec["identical"] is True
    assert 0.0 <= spec["acceptance_rate"] <= 1.0 and spec["tokens_per_round"] >= 1.0
    printed = capsys.readouterr().out
    assert "TTFT p50" in printed and "ITL p50" in printed and "speculative decoding" in printed


def test_explicit_options_override_quick() -> None:
    args = bench_serving.parse_args(ARGV)
    assert (args.layers, args.hidden, args.vocab) == (2, 64, 128)  # from --quick
    assert (
        args.num_requests == 4 and args.prompt_len == (4, 12) and args.rate_list == [50.0, math.inf]
    )
    assert bench_serving.parse_args(["--quick"]).num_requests == 16


def test_percentile_interpolates_between_ranks() -> None:
    assert bench_serving.percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert bench_serving.percentile([1.0, 2.0, 3.0, 4.0, 5.0], 90) == pytest.approx(4.6)
    assert bench_serving.percentile([7.0], 99) == 7.0
    assert math.isnan(bench_serving.percentile([], 50))
