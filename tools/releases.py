"""Find the releases of a workspace package in git history.

A release of package NAME is a commit that changed the `version = "..."` line of
packages/NAME/pyproject.toml; the commit that first introduced the file counts as the release
of the version it introduced. Only the git history is used (no tags), so this works in any
full clone. The first commit that sets a version is its release; later commits that set the
same version again (a revert) are not new releases.

    uv run python tools/releases.py tttv2-blocks          # table of version, commit, date
    uv run python tools/releases.py tttv2-blocks --last   # commit of the last release
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from workspace import REPO_ROOT, ToolError, get_package, git, main_guard

VERSION_LINE_RE = "^version[[:space:]]*="


@dataclass(frozen=True)
class Release:
    package: str
    version: str
    commit: str  # full sha
    timestamp: int  # committer time, seconds since epoch

    @property
    def date(self) -> str:
        return datetime.fromtimestamp(self.timestamp, UTC).strftime("%Y-%m-%d")


def _version_at(repo_root: Path, commit: str, path: str) -> str | None:
    text = git(repo_root, "show", f"{commit}:{path}", check=False)
    if not text:
        return None
    try:
        return str(tomllib.loads(text).get("project", {}).get("version")) or None
    except tomllib.TOMLDecodeError:
        return None


def _require_full_history(repo_root: Path) -> None:
    if git(repo_root, "rev-parse", "--is-shallow-repository") == "true":
        raise ToolError(
            "this is a shallow clone; releases are found in git history: run "
            "`git fetch --unshallow` (in GitHub Actions: actions/checkout with fetch-depth: 0)"
        )


def list_releases(repo_root: Path, package_name: str, rev: str = "HEAD") -> list[Release]:
    """Releases of `package_name` reachable from `rev`, oldest first."""
    pkg = get_package(package_name, repo_root)
    _require_full_history(repo_root)
    path = f"{pkg.rel(repo_root)}/pyproject.toml"
    log = git(
        repo_root,
        "log",
        "--reverse",
        "--topo-order",
        "--format=%H %ct",
        f"-G{VERSION_LINE_RE}",
        rev,
        "--",
        path,
    )
    releases: list[Release] = []
    seen: set[str] = set()
    for line in log.splitlines():
        commit, timestamp = line.split()
        version = _version_at(repo_root, commit, path)
        if version is None or version in seen:
            continue
        parents = git(repo_root, "rev-list", "--parents", "-n1", commit).split()[1:]
        before = _version_at(repo_root, parents[0], path) if parents else None
        if version != before:
            seen.add(version)
            releases.append(Release(package_name, version, commit, int(timestamp)))
    return releases


def last_release(repo_root: Path, package_name: str, rev: str = "HEAD") -> Release | None:
    """The newest release of `package_name` reachable from `rev`, or None if never released."""
    found = list_releases(repo_root, package_name, rev)
    return found[-1] if found else None


def find_release(repo_root: Path, package_name: str, version: str) -> Release:
    """The release of `version`; ToolError (exit 2) naming the released versions otherwise."""
    found = list_releases(repo_root, package_name)
    for release in found:
        if release.version == version:
            return release
    known = ", ".join(r.version for r in found) or "none"
    raise ToolError(f"{package_name} {version} was never released; releases: {known}", code=2)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("package", help="workspace package name, e.g. tttv2-blocks")
    parser.add_argument("--last", action="store_true", help="print only the last release commit")
    args = parser.parse_args()
    if args.last:
        release = last_release(REPO_ROOT, args.package)
        if release is None:
            raise ToolError(f"{args.package} has no release in git history")
        print(release.commit)
        return 0
    for release in list_releases(REPO_ROOT, args.package):
        print(f"{release.version}\t{release.commit[:12]}\t{release.date}")
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
