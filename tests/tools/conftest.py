"""Fixtures for the tools/ and ci/ tests: throwaway git repositories and a subprocess helper.

Two kinds of throwaway repository:
- `demo_repo`: a tiny synthetic uv workspace with one package, tttv2-demo, laid out like the
  real ones (src/tttv2/demo, changes/, towncrier config), plus a copy of tools/. No torch.
- `workspace_clone`: `git clone` of this repository with the working-tree tools/, ci/,
  .github/ and models/example/ copied over and committed (so the tests see the current tools
  even before they are committed here, and nothing touches this checkout).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
for sub in ("tools", "ci"):
    if str(REPO_ROOT / sub) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT / sub))

# Files this suite tests, copied from the working tree (tools/bench belongs to the benchmarks).
OWNED = ["tools", "ci", ".github", ".ci", "models/example"]
IGNORE = shutil.ignore_patterns(".venv", "__pycache__", ".pytest_cache", "*.pyc", "bench")

DEMO_PYPROJECT = """\
[project]
name = "tttv2-demo"
version = "1.0.0"
description = "demo package"
requires-python = ">=3.11"
dependencies = []

[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["src/tttv2"]

[tool.towncrier]
package = "tttv2.demo"
package_dir = "src"
name = "tttv2-demo"
directory = "changes"
filename = "CHANGELOG.md"
start_string = "<!-- towncrier release notes start -->\\n"
title_format = "## {version} ({project_date})"
underlines = ["", "", ""]
""" + "".join(
    f'\n[[tool.towncrier.type]]\ndirectory = "{t}"\nname = "{t.title()}"\nshowcontent = true\n'
    for t in ("breaking", "feature", "bugfix", "perf", "doc", "misc")
)

DEMO_ROOT = """\
[project]
name = "demo-workspace"
version = "0"
requires-python = ">=3.11"
dependencies = ["tttv2-demo"]

[tool.uv]
package = false

[tool.uv.workspace]
members = ["packages/*"]

[tool.uv.sources]
tttv2-demo = { workspace = true }
"""

DEMO_INIT = '''"""Demo package."""


def greet(name: str) -> str:
    return f"hello {name}"
'''


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: builds wheels or model environments (seconds to a minute); runs in CI"
    )


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update(
        GIT_AUTHOR_NAME="ci",
        GIT_AUTHOR_EMAIL="ci@example.invalid",
        GIT_COMMITTER_NAME="ci",
        GIT_COMMITTER_EMAIL="ci@example.invalid",
    )
    return env


def sh(cmd: list, cwd: Path, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a command (extra environment variables as keywords); on unexpected failure, fail the
    test showing its output."""
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=child_env() | env,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"{cmd} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def tool(repo: Path, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run repo/tools/NAME.py (or ci/run.py for name='ci') with this interpreter."""
    script = repo / "ci" / "run.py" if name == "ci" else repo / "tools" / f"{name}.py"
    return sh([sys.executable, script, *args], cwd=repo, check=check)


def commit_all(repo: Path, message: str) -> str:
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", message], repo)
    return sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()


@pytest.fixture
def demo_repo(tmp_path: Path) -> Path:
    """Synthetic workspace; its first commit is release 1.0.0 of tttv2-demo."""
    repo = tmp_path / "demo"
    pkg = repo / "packages" / "tttv2-demo"
    (pkg / "src" / "tttv2" / "demo").mkdir(parents=True)
    (pkg / "changes").mkdir()
    (pkg / "changes" / ".gitkeep").write_text("")
    (pkg / "pyproject.toml").write_text(DEMO_PYPROJECT)
    (pkg / "src" / "tttv2" / "demo" / "__init__.py").write_text(DEMO_INIT)
    (pkg / "CHANGELOG.md").write_text("# Changelog\n\n<!-- towncrier release notes start -->\n")
    (repo / "pyproject.toml").write_text(DEMO_ROOT)
    (repo / ".gitignore").write_text(".venv/\nwheelhouse/\n__pycache__/\n")
    shutil.copytree(REPO_ROOT / "tools", repo / "tools", ignore=IGNORE)
    sh(["git", "init", "-q", "-b", "main"], repo)
    sh(["uv", "lock", "-q"], repo)
    commit_all(repo, "demo workspace")
    return repo


@pytest.fixture
def workspace_clone(tmp_path: Path) -> Path:
    """A clone of this repository with the working-tree versions of the CI/tooling files."""
    clone = tmp_path / "ws"
    sh(["git", "clone", "-q", REPO_ROOT, clone], tmp_path)
    for rel in OWNED:
        if (REPO_ROOT / rel).exists():
            shutil.copytree(REPO_ROOT / rel, clone / rel, ignore=IGNORE, dirs_exist_ok=True)
    sh(["git", "add", "-A", *OWNED], clone)
    sh(["git", "commit", "-q", "--allow-empty", "-m", "test: working-tree tools"], clone)
    return clone
