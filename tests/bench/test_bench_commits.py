"""bench_commits.py runs two checkouts' decode steps pair by pair: here this environment
against itself on a tiny checkpoint, which must time every step of both sides in every
round; it asserts no time, only that the measurement is whole."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))
import bench_commits  # noqa: E402


def checkout(tmp_path: Path, name: str) -> Path:
    """A folder that looks like a synced checkout: .venv/bin/python runs this environment's
    interpreter (a script, not a link: a linked interpreter would look for its own venv)."""
    bin_dir = tmp_path / name / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return tmp_path / name


def test_rounds_of_paired_steps(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "commits.json"
    argv = ["--before", str(checkout(tmp_path, "a")), "--after", str(checkout(tmp_path, "b")),
            "--checkpoint", str(tiny_llama), "--dtype", "float32", "--prompt-len", "5", "--warmup", "1",
            "--steps", "4", "--rounds", "2", "--threads", "1", "--gap-ms", "0", "--json", str(out)]  # fmt: skip
    assert bench_commits.main(argv) == 0
    data = json.loads(out.read_text())
    for key in ("before", "after", "before_forward", "after_forward"):
        assert len(data[key]) == 2 * 4, key
        assert all(math.isfinite(t) and t > 0 for t in data[key]), key
    # the model's forward is part of the step it was timed in
    for side in ("before", "after"):
        assert all(f < s for f, s in zip(data[side + "_forward"], data[side], strict=True))
    assert len(data["round_ratios"]) == 2
    printed = capsys.readouterr().out
    assert "round 2/2" in printed and "median of the rounds' ratios" in printed


def test_a_checkout_without_an_environment_is_named(tiny_llama: Path, tmp_path: Path) -> None:
    (tmp_path / "bare").mkdir()
    argv = [
        "--before",
        str(tmp_path / "bare"),
        "--after",
        str(tmp_path / "bare"),
        "--checkpoint",
        str(tiny_llama),
    ]
    with pytest.raises(
        SystemExit, match=r"before: .*\.venv/bin/python not found \(run `uv sync` in"
    ):
        bench_commits.main(argv)


@pytest.mark.parametrize("flag", ["--steps", "--rounds", "--batch"])
def test_counts_below_one_are_usage_errors(
    flag: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = [
        "--before",
        str(tmp_path),
        "--after",
        str(tmp_path),
        "--checkpoint",
        str(tmp_path),
        flag,
        "0",
    ]
    with pytest.raises(SystemExit) as exc:
        bench_commits.main(argv)
    assert exc.value.code == 2
    assert f"{flag} must be at least 1, got 0" in capsys.readouterr().err
