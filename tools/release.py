"""Release one workspace package: check, bump, changelog, lock, commit, tag.

    uv run python tools/release.py tttv2-blocks --bump minor --dry-run   # checks + plan only
    uv run python tools/release.py tttv2-blocks --bump minor

Steps, stopping at the first failure:
  1. packages/NAME/changes/ holds at least one towncrier fragment;
  2. the package, uv.lock and the workspace's pyproject.toml files (the root one and
     packages/*/pyproject.toml; models are not checked, they pin released wheels) are committed
     (the release is rebuilt from git history later, so it must be exactly what is committed);
  3. API check against the previous release (tools/api_check.py): breaking changes, or a
     *.breaking.md fragment, refuse a minor/patch release and are printed;
  4. `uv version --package NAME --bump KIND` (edits the static version line; relocks);
  5. `towncrier build --yes --version X` in packages/NAME (CHANGELOG.md, fragments removed);
  6. `uv lock`;
  7. commit "release NAME X" (only the files above) and tag NAME-vX.

Exit 0: released (or dry run passed). Exit 1: refused or a step failed. Exit 2: bad input.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from api_check import check_api
from changelog_check import fragments
from releases import last_release, list_releases
from workspace import REPO_ROOT, Package, ToolError, get_package, git, main_guard, run

BUMPS = ("major", "minor", "patch")


def bump_version(version: str, kind: str) -> str:
    """Semantic-version bump of X.Y.Z (the fallback when `uv version --bump` is missing)."""
    match = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", version)
    if not match:
        raise ToolError(f"cannot bump non-numeric version {version!r}")
    major, minor, patch = (int(part or 0) for part in match.groups())
    if kind == "major":
        return f"{major + 1}.0.0"
    if kind == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def write_static_version(pyproject: Path, version: str) -> None:
    """Rewrite the first top-level `version = "..."` line (the [project] one)."""
    text = pyproject.read_text()
    new, count = re.subn(r'(?m)^version\s*=\s*"[^"]*"', f'version = "{version}"', text, count=1)
    if count != 1:
        raise ToolError(f'no static `version = "..."` line in {pyproject}')
    pyproject.write_text(new)


def _uv_has_bump() -> bool:
    out = subprocess.run(["uv", "version", "--help"], capture_output=True, text=True, check=False)
    return "--bump" in out.stdout


def next_version(pkg: Package, kind: str) -> str:
    if not _uv_has_bump():
        return bump_version(pkg.version, kind)
    proc = subprocess.run(
        ["uv", "version", "--package", pkg.name, "--bump", kind, "--dry-run", "--short"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ToolError(f"uv version --dry-run failed: {proc.stderr.strip().splitlines()[-1:]}")
    return proc.stdout.strip().splitlines()[-1]


def _require_committed(repo_root: Path, pkg: Package) -> None:
    paths = [pkg.rel(repo_root), "uv.lock", "pyproject.toml", "packages/*/pyproject.toml"]
    dirty = git(repo_root, "status", "--porcelain", "--", *paths)
    if dirty:
        first = dirty.splitlines()[0].strip()
        raise ToolError(
            f"uncommitted changes ({first}, ...): commit them first; a release is "
            "rebuilt from git history, so it must be exactly what is committed"
        )


def preflight(repo_root: Path, pkg: Package, kind: str) -> str:
    """Run checks 1-3; return the new version. Raises ToolError when the release is refused."""
    found = fragments(pkg)
    if not found:
        raise ToolError(
            f"no news fragments in {pkg.rel(repo_root)}/changes/; add one, e.g. "
            f"changes/+my-change.feature.md (types: {', '.join(pkg.fragment_types)})"
        )
    previous = last_release(repo_root, pkg.name)
    breakages = check_api(repo_root, pkg.name, previous.commit) if previous else []
    declared = [p.name for p, t in found.items() if t == "breaking"]
    if breakages:
        print(f"breaking API changes since {pkg.name} {previous.version}:")
        for line in breakages:
            print(f"  {line}")
    if (breakages or declared) and kind != "major":
        why = (
            f"{len(breakages)} breaking API change(s)"
            if breakages
            else f"breaking fragment(s) {declared}"
        )
        raise ToolError(f"refusing a {kind} release of {pkg.name}: {why}; use --bump major")
    if breakages and not declared:
        raise ToolError(
            "breaking changes need a changes/+<slug>.breaking.md fragment that explains them"
        )
    version = next_version(pkg, kind)
    if any(r.version == version for r in list_releases(repo_root, pkg.name)):
        raise ToolError(f"{pkg.name} {version} was already released")
    tag = f"{pkg.name}-v{version}"
    if git(repo_root, "tag", "--list", tag):
        raise ToolError(f"tag {tag} already exists")
    return version


def release(repo_root: Path, name: str, kind: str, dry_run: bool = False) -> str:
    pkg = get_package(name, repo_root)
    if not dry_run:
        _require_committed(repo_root, pkg)
    version = preflight(repo_root, pkg, kind)
    print(f"{pkg.name}: {pkg.version} -> {version} ({kind})")
    towncrier = [sys.executable, "-m", "towncrier", "build", "--version", version]
    if dry_run:
        run(towncrier + ["--draft"], cwd=pkg.dir)
        print(f"dry run: would commit 'release {pkg.name} {version}' and tag {pkg.name}-v{version}")
        return version
    if _uv_has_bump():
        run(["uv", "version", "--package", pkg.name, "--bump", kind, "--no-sync"], cwd=repo_root)
    else:
        write_static_version(pkg.dir / "pyproject.toml", version)
    written = get_package(name, repo_root).version
    if written != version:
        raise ToolError(
            f"version in {pkg.rel(repo_root)}/pyproject.toml is {written}, expected {version}"
        )
    run(towncrier + ["--yes"], cwd=pkg.dir)
    run(["uv", "lock"], cwd=repo_root)
    message = f"release {pkg.name} {version}"
    rel = pkg.rel(repo_root)
    files = [f"{rel}/pyproject.toml", f"{rel}/CHANGELOG.md", f"{rel}/changes", "uv.lock"]
    run(["git", "commit", "--quiet", "-m", message, "--", *files], cwd=repo_root)
    run(["git", "tag", "-a", f"{pkg.name}-v{version}", "-m", message], cwd=repo_root)
    commit = git(repo_root, "rev-parse", "HEAD")
    print(f"released {pkg.name} {version}: commit {commit[:12]}, tag {pkg.name}-v{version}")
    print(f"publish with: git push origin HEAD {pkg.name}-v{version}")
    return version


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("package", help="workspace package name, e.g. tttv2-blocks")
    parser.add_argument(
        "--bump", required=True, choices=BUMPS, help="semantic version part to bump"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="run the checks, print the plan and changelog draft, change nothing",
    )
    args = parser.parse_args()
    release(REPO_ROOT, args.package, args.bump, args.dry_run)
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
