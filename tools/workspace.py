"""Shared helpers for the tools: repository root, workspace packages, git, errors.

Every tool locates the repository from its own file (tools/ sits at the repository root), so
running a copy of tools/ inside a throwaway clone operates on that clone.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class ToolError(Exception):
    """A one-line, user-facing error. `code` is the process exit status (2 = bad input)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Package:
    name: str  # distribution name, e.g. tttv2-blocks
    dir: Path  # packages/<name>, absolute
    import_name: str  # e.g. tttv2.blocks
    version: str  # the static version in the working tree

    def rel(self, repo_root: Path) -> str:
        return self.dir.relative_to(repo_root).as_posix()

    @property
    def fragment_types(self) -> list[str]:
        data = tomllib.loads((self.dir / "pyproject.toml").read_text())
        types = data.get("tool", {}).get("towncrier", {}).get("type", [])
        return [t["directory"] for t in types] or [
            "breaking",
            "feature",
            "bugfix",
            "perf",
            "doc",
            "misc",
        ]


def packages(repo_root: Path = REPO_ROOT) -> dict[str, Package]:
    """Workspace packages, discovered from packages/*/pyproject.toml, keyed by name."""
    found: dict[str, Package] = {}
    for pyproject in sorted((repo_root / "packages").glob("*/pyproject.toml")):
        data = tomllib.loads(pyproject.read_text())
        project = data.get("project", {})
        name = project.get("name")
        if not name:
            continue
        import_name = data.get("tool", {}).get("towncrier", {}).get("package")
        found[name] = Package(
            name=name,
            dir=pyproject.parent,
            import_name=import_name or name.replace("-", "."),
            version=str(project.get("version", "")),
        )
    return found


def get_package(name: str, repo_root: Path = REPO_ROOT) -> Package:
    """The package called `name`; a ToolError (exit 2) listing the valid names otherwise."""
    found = packages(repo_root)
    if name not in found:
        valid = ", ".join(found) or "(none)"
        raise ToolError(f"unknown package {name!r}; valid packages: {valid}", code=2)
    return found[name]


def git(repo_root: Path, *args: str, check: bool = True) -> str:
    """Run git in `repo_root`; return stripped stdout. ToolError with git's message on failure."""
    proc = subprocess.run(
        ["git", "-C", str(repo_root), *args], capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise ToolError(f"git {' '.join(args)} failed: {detail[-1] if detail else proc.returncode}")
    return proc.stdout.strip()


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    """Run a command, echoing it; ToolError if it fails (its output was already shown)."""
    print("$ " + shlex.join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=cwd, env=env, check=False)
    if proc.returncode != 0:
        raise ToolError(f"command failed with exit status {proc.returncode}: {shlex.join(cmd)}")


def main_guard(func) -> int:
    """Run a CLI entry point; turn ToolError into `error: ...` on stderr and its exit code."""
    try:
        return func() or 0
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
