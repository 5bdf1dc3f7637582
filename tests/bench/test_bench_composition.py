"""The step-by-step composition benchmark runs end to end on a tiny checkpoint and reports
what it promises (it asserts no time: only that the measurement is complete and sane)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))
import bench_composition  # noqa: E402


def test_both_phases_for_every_batch_size(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "composition.json"
    argv = ["--checkpoint", str(tiny_llama), "--dtype", "float32", "--batch", "1,3", "--steps", "4",
            "--prompt-len", "7", "--json", str(out)]  # fmt: skip
    assert bench_composition.main(argv) == 0
    results = json.loads(out.read_text())["results"]
    assert sorted(results) == ["b1 ours", "b1 ours-loop", "b3 ours", "b3 ours-loop"]
    for r in results.values():
        assert r["steps"] == 4
        for key in ("ours_ms", "hand_ms", "ratio_median", "ratio_of_sums", *r["ratio_quartiles"]):
            value = r[key] if isinstance(key, str) else key
            assert math.isfinite(value) and value > 0
        assert r["ratio_quartiles"][0] <= r["ratio_median"] <= r["ratio_quartiles"][1]
    # same weights, same inputs, fp32: the bare loop picks what hand picks at every step
    assert results["b1 ours-loop"]["steps_with_same_picks"] == 4
    assert results["b3 ours-loop"]["steps_with_same_picks"] == 4
    printed = capsys.readouterr().out
    assert "b3 ours-loop" in printed and "per-step hand/ours median" in printed


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--batch", "9"], "sizes from 1 to 8"),
        (["--batch", "1,x"], "comma-separated integers"),
        (["--steps", "1"], "--steps must be at least 2"),
        (["--checkpoint", "/nonexistent"], "no config.json"),
    ],
)
def test_bad_arguments_are_named(
    argv: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exc:
        bench_composition.parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
