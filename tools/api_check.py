"""Public-API breaking-change check for one workspace package, with griffe.

Compares the public API of the package's import name (e.g. tttv2.blocks, loaded from
packages/NAME/src) at a git ref - by default the package's last release commit - against the
working tree, using griffe.find_breaking_changes. Code is parsed statically, never imported.

    uv run python tools/api_check.py tttv2-blocks                   # against the last release
    uv run python tools/api_check.py tttv2-blocks --against v1.2    # against any git ref
    uv run python tools/api_check.py tttv2-blocks --allow-declared  # CI: a *.breaking.md
                                                                    # fragment permits breakage

Exit 0: no breaking change (or declared, with --allow-declared). Exit 1: breaking changes,
printed one per line. Exit 2: bad input.

Reuse from Python: check_api(repo_root, package_name, ref=None) -> list of one-line strings,
built on api_snapshot.find_breaking_changes (tools/api_snapshot.py) (which extracts the old side with
`git archive`, never a git worktree, so concurrent checks cannot collide).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling modules, also when imported

from changelog_check import fragments  # noqa: E402
from releases import last_release  # noqa: E402
from workspace import REPO_ROOT, ToolError, get_package, git, main_guard  # noqa: E402


def check_api(repo_root: Path, package_name: str, ref: str | None = None) -> list[str]:
    """One line per breaking change of `package_name`'s public API since `ref`.

    `ref` defaults to the package's last release commit. Returns [] when there is nothing to
    compare against (never released, or the import package did not exist at `ref`). The
    comparison itself is `find_breaking_changes` of tools/api_snapshot.py, shared with the test
    toolkit so CI, the release tool and tests judge breakage the same way.
    """
    from api_snapshot import find_breaking_changes

    repo_root = Path(repo_root)
    pkg = get_package(package_name, repo_root)
    if ref is None:
        release = last_release(repo_root, package_name)
        if release is None:
            return []
        ref = release.commit
    git(repo_root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    return [str(change) for change in find_breaking_changes(repo_root, pkg.dir, ref)]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("package", help="workspace package name, e.g. tttv2-blocks")
    parser.add_argument(
        "--against", metavar="REF", help="git ref to compare with (default: last release commit)"
    )
    parser.add_argument(
        "--allow-declared",
        action="store_true",
        help="exit 0 despite breaking changes when a *.breaking.md fragment declares them",
    )
    args = parser.parse_args()
    pkg = get_package(args.package)
    ref = args.against
    label = ref
    if ref is None:
        release = last_release(REPO_ROOT, args.package)
        if release is None:
            print(f"{args.package}: never released; nothing to compare against")
            return 0
        ref, label = release.commit, f"release {release.version} ({release.commit[:12]})"
    else:
        try:
            git(REPO_ROOT, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        except ToolError:
            raise ToolError(f"unknown git ref {ref!r}", code=2) from None
    breakages = check_api(REPO_ROOT, args.package, ref)
    if not breakages:
        print(f"{args.package}: no breaking API changes against {label}")
        return 0
    for line in breakages:
        print(line)
    declared = [p.name for p, kind in fragments(pkg).items() if kind == "breaking"]
    if args.allow_declared and declared:
        print(
            f"{args.package}: {len(breakages)} breaking change(s) against {label}, "
            f"declared by {', '.join(declared)}"
        )
        return 0
    raise ToolError(
        f"{args.package}: {len(breakages)} breaking API change(s) against {label}; "
        "keep the old API or add a changes/+<slug>.breaking.md fragment and release a major version"
    )


if __name__ == "__main__":
    sys.exit(main_guard(main))
