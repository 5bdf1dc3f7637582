"""ci/: the matrix is declared once, the workflow is generated from it, the runner reports."""

import shutil
import sys
import tomllib
from pathlib import Path

import yaml
from conftest import REPO_ROOT, sh
from matrix import load_jobs
from workflow import job_id, render


def test_committed_workflow_is_the_generated_one() -> None:
    committed = (REPO_ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert committed == render(load_jobs()), "run: uv run python ci/run.py gen-workflow"


def test_workflow_has_one_job_per_matrix_job_running_ci_run() -> None:
    jobs = load_jobs()
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "ci.yml").read_text())
    assert list(workflow["jobs"]) == [job_id(job.name) for job in jobs]
    for job in jobs:
        steps = workflow["jobs"][job_id(job.name)]["steps"]
        assert steps[0]["with"]["fetch-depth"] == 0
        assert steps[-1]["run"] == f'uv run python ci/run.py "{job.name}"'


def test_jobs_are_discovered_not_listed() -> None:
    names = [job.name for job in load_jobs()]
    packages = sorted(p.parent.name for p in REPO_ROOT.glob("packages/*/pyproject.toml"))
    models = sorted(p.parent.name for p in REPO_ROOT.glob("models/*/pyproject.toml"))
    assert [n for n in names if n.startswith("package:")] == [f"package:{p}" for p in packages]
    assert [n for n in names if n.startswith("model:")] == [f"model:{m}" for m in models]
    assert {"config", "tools", "model:example", "package:tttv2-core"} <= set(names)
    by_name = {job.name: job for job in load_jobs()}
    assert by_name["config"].steps[0].run == (
        "uv",
        "run",
        "pytest",
        "-n",
        "auto",
        "tests",
        "--ignore=tests/tools",
    )
    assert [s.run for s in by_name["model:example"].steps][1:] == [
        ("uv", "sync", "--locked"),  # a lock that no longer matches the pins fails the job
        ("uv", "run", "--frozen", "pytest", "-n", "auto"),
    ]
    assert {s.cwd for s in by_name["model:example"].steps} == {".", "models/example"}


def test_lint_and_typecheck_jobs_run_ruff_and_mypy_from_the_root() -> None:
    by_name = {job.name: job for job in load_jobs()}
    assert [s.run for s in by_name["lint"].steps] == [
        ("uv", "run", "ruff", "check", "."),
        ("uv", "run", "ruff", "format", "--check", "."),
    ]
    # mypy takes its files and strictness from the root pyproject, so CI and a bare `uv run mypy` agree
    assert [s.run for s in by_name["typecheck"].steps] == [("uv", "run", "mypy")]
    assert {s.cwd for job in ("lint", "typecheck") for s in by_name[job].steps} == {"."}
    mypy = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert mypy["strict"] is True and mypy["files"] == ["packages/*/src"]


def _runner(tmp_path: Path, matrix: str) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "ci", root / "ci", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "ci" / "matrix.toml").write_text(matrix)
    (root / "empty").mkdir()
    (root / "empty" / "conftest.py").write_text("")
    return root


def test_runner_statuses_summary_and_exit_code(tmp_path: Path) -> None:
    py = sys.executable
    matrix = f"""
[[job]]
name = "ok"
steps = [{{ run = ["{py}", "-c", "print('hi')"] }}]

[[job]]
name = "broken"
steps = [{{ run = ["{py}", "-c", "raise SystemExit(3)"] }}, {{ run = ["{py}", "-c", "print('still runs')"] }}]

[[job]]
name = "no-tests"
steps = [{{ run = ["{py}", "-m", "pytest", "-p", "no:cacheprovider", "empty"], pytest = true }}]

[[job]]
name = "no-tests-allowed"
may_be_empty = true
steps = [{{ run = ["{py}", "-m", "pytest", "-p", "no:cacheprovider", "empty"], pytest = true }}]

[[job]]
name = "stops"
fail_fast = true
steps = [{{ run = ["{py}", "-c", "raise SystemExit(1)"] }}, {{ run = ["{py}", "-c", "print('never')"] }}]
"""
    root = _runner(tmp_path, matrix)
    # Plugin autoload off: the workspace's pytest plugins are irrelevant here and slow to import.
    proc = sh(
        [py, root / "ci" / "run.py", "all"], root, check=False, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"
    )
    out = proc.stdout
    assert proc.returncode == 1
    assert out.rstrip().splitlines()[-1] == "2 passed, 3 failed"
    table = {
        line.split()[0]: line.split()[1]
        for line in out.splitlines()
        if line.split()
        and line.split()[0] in {"ok", "broken", "no-tests", "no-tests-allowed", "stops"}
        and len(line.split()) == 3
    }
    assert table == {
        "ok": "pass",
        "broken": "FAIL",
        "no-tests": "FAIL",
        "no-tests-allowed": "pass",
        "stops": "FAIL",
    }
    assert "$ " + py + " -c 'print('\"'\"'hi'\"'\"')'" in out  # every command is printed
    assert "\nstill runs\n" in out and "\nnever\n" not in out
    assert "no tests collected (exit 5)" in out

    proc = sh(
        [py, root / "ci" / "run.py", "ok", "no-tests-allowed"],
        root,
        check=False,
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
    )
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("2 passed, 0 failed")
    proc = sh([py, root / "ci" / "run.py", "nope"], root, check=False)
    assert proc.returncode == 2 and "unknown job 'nope'; jobs: ok, broken" in proc.stderr


def test_ci_run_script_is_minimal() -> None:
    script = REPO_ROOT / ".ci" / "run"
    lines = [line for line in script.read_text().splitlines() if line and not line.startswith("#")]
    assert lines == [
        "set -euo pipefail",
        "command -v uv >/dev/null 2>&1 || python3 -m pip install uv",
        "uv run python ci/run.py all",
    ]
    assert script.stat().st_mode & 0o111
