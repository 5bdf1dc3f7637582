"""Towncrier fragment checks for one workspace package.

A package that changed since its last release must carry at least one news fragment in
packages/NAME/changes/ (`<issue-or-+slug>.<type>.md`, types from its [tool.towncrier] config).
Changes to changes/ itself and to CHANGELOG.md do not count as changes.

    uv run python tools/changelog_check.py tttv2-blocks

Exit 0: unchanged since the last release, or changed with a fragment. Exit 1: changed without
a fragment (the changed files are listed). Exit 2: bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from releases import last_release
from workspace import REPO_ROOT, Package, ToolError, get_package, git, main_guard


def fragment_type(path: Path, types: list[str]) -> str | None:
    """The towncrier type of a fragment file name (`12.feature.md` -> feature), else None."""
    parts = path.name.split(".")
    for part in reversed(parts[1:]):
        if part in types:
            return part
    return None


def fragments(pkg: Package) -> dict[Path, str]:
    """News fragments present in the package's changes/ directory -> their type."""
    changes = pkg.dir / "changes"
    if not changes.is_dir():
        return {}
    types = pkg.fragment_types
    found = {}
    for path in sorted(changes.iterdir()):
        kind = fragment_type(path, types) if path.is_file() else None
        if kind:
            found[path] = kind
    return found


def changed_since(repo_root: Path, commit: str, pkg: Package) -> list[str]:
    """Files under the package changed since `commit` (working tree, untracked included)."""
    rel = pkg.rel(repo_root)
    tracked = git(repo_root, "diff", "--name-only", commit, "--", rel).splitlines()
    untracked = git(repo_root, "ls-files", "--others", "--exclude-standard", "--", rel).splitlines()
    ignored = (f"{rel}/changes/", f"{rel}/CHANGELOG.md")
    return sorted(f for f in set(tracked + untracked) if f and not f.startswith(ignored))


def check(repo_root: Path, package_name: str) -> tuple[bool, str]:
    """(ok, one-line explanation) for the fragment rule above."""
    pkg = get_package(package_name, repo_root)
    release = last_release(repo_root, package_name)
    if release is None:
        return True, f"{package_name}: never released; no fragment needed yet"
    changed = changed_since(repo_root, release.commit, pkg)
    if not changed:
        return True, f"{package_name}: unchanged since {release.version} ({release.commit[:12]})"
    found = fragments(pkg)
    if found:
        names = ", ".join(p.name for p in found)
        return (
            True,
            f"{package_name}: {len(changed)} file(s) changed since {release.version}; fragments: {names}",
        )
    listing = ", ".join(changed[:10]) + (" ..." if len(changed) > 10 else "")
    return False, (
        f"{package_name}: {len(changed)} file(s) changed since release {release.version} "
        f"but {pkg.rel(repo_root)}/changes/ has no news fragment (e.g. +my-change.feature.md); "
        f"changed: {listing}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("package", help="workspace package name, e.g. tttv2-blocks")
    args = parser.parse_args()
    ok, message = check(REPO_ROOT, args.package)
    if not ok:
        raise ToolError(message)
    print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
