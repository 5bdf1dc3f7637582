"""Load ci/matrix.toml and expand it into concrete jobs (see the comments in that file)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MATRIX = REPO_ROOT / "ci" / "matrix.toml"


@dataclass(frozen=True)
class Step:
    run: tuple[str, ...]
    cwd: str = "."
    pytest: bool = False


@dataclass(frozen=True)
class Job:
    name: str
    steps: tuple[Step, ...]
    fail_fast: bool = False
    may_be_empty: bool = False
    timeout_minutes: int = 25


def _fill(value: str, name: str | None) -> str:
    return value.replace("{name}", name) if name is not None else value


def _job(spec: dict, name: str | None) -> Job:
    steps = tuple(
        Step(
            run=tuple(_fill(arg, name) for arg in step["run"]),
            cwd=_fill(step.get("cwd", "."), name),
            pytest=bool(step.get("pytest", False)),
        )
        for step in spec["steps"]
    )
    return Job(
        name=_fill(spec["name"], name),
        steps=steps,
        fail_fast=bool(spec.get("fail_fast", False)),
        may_be_empty=bool(spec.get("may_be_empty", False)),
        timeout_minutes=int(spec.get("timeout_minutes", 25)),
    )


def load_jobs(repo_root: Path = REPO_ROOT, matrix: Path | None = None) -> list[Job]:
    """All jobs, in matrix order; `each` jobs in sorted glob order."""
    data = tomllib.loads((matrix or repo_root / "ci" / "matrix.toml").read_text())
    jobs: list[Job] = []
    for spec in data["job"]:
        if "each" in spec:
            for match in sorted(repo_root.glob(spec["each"])):
                jobs.append(_job(spec, match.parent.name))
        else:
            jobs.append(_job(spec, None))
    names = [job.name for job in jobs]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"duplicate CI job names: {sorted(duplicates)}")
    return jobs
