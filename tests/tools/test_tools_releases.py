"""tools/releases.py: releases are version-line changes in git history, found without tags."""

from pathlib import Path

import pytest
from conftest import REPO_ROOT, commit_all, sh, tool
from releases import last_release, list_releases
from workspace import ToolError


def _set_version(repo: Path, version: str) -> None:
    path = repo / "packages" / "tttv2-demo" / "pyproject.toml"
    text = path.read_text()
    start = text.index('version = "')
    end = text.index('"', start + len('version = "'))
    path.write_text(text[:start] + f'version = "{version}' + text[end:])


def test_history_defines_releases(demo_repo: Path) -> None:
    first = sh(["git", "rev-parse", "HEAD"], demo_repo).stdout.strip()
    (demo_repo / "packages" / "tttv2-demo" / "README.md").write_text("docs\n")
    commit_all(demo_repo, "not a release: version line untouched")
    _set_version(demo_repo, "1.1.0")
    second = commit_all(demo_repo, "bump")
    _set_version(demo_repo, "1.0.0")
    commit_all(demo_repo, "revert to 1.0.0 is not a new release of 1.0.0")
    _set_version(demo_repo, "2.0.0")
    third = commit_all(demo_repo, "bump again")

    found = list_releases(demo_repo, "tttv2-demo")
    assert [(r.version, r.commit) for r in found] == [
        ("1.0.0", first),
        ("1.1.0", second),
        ("2.0.0", third),
    ]
    assert last_release(demo_repo, "tttv2-demo").commit == third
    # As of an older revision, only what is reachable from it counts.
    assert last_release(demo_repo, "tttv2-demo", rev=second).version == "1.1.0"


def test_works_in_a_fresh_clone_without_tags(demo_repo: Path, tmp_path: Path) -> None:
    _set_version(demo_repo, "1.0.1")
    bump = commit_all(demo_repo, "bump")
    sh(["git", "tag", "unrelated-tag"], demo_repo)
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", "--no-tags", demo_repo, clone], tmp_path)
    assert sh(["git", "tag"], clone).stdout == ""
    out = tool(clone, "releases", "tttv2-demo").stdout.splitlines()
    assert [line.split("\t")[0] for line in out] == ["1.0.0", "1.0.1"]
    assert tool(clone, "releases", "tttv2-demo", "--last").stdout.strip() == bump


def test_shallow_clone_is_refused_with_a_hint(demo_repo: Path, tmp_path: Path) -> None:
    _set_version(demo_repo, "1.0.1")
    commit_all(demo_repo, "bump")
    clone = tmp_path / "shallow"
    sh(["git", "clone", "-q", "--depth", "1", demo_repo.as_uri(), clone], tmp_path)
    with pytest.raises(ToolError, match="fetch-depth: 0"):
        list_releases(clone, "tttv2-demo")


def test_unknown_package_exits_2_and_lists_valid_ones(demo_repo: Path) -> None:
    proc = tool(demo_repo, "releases", "nope", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: unknown package 'nope'; valid packages: tttv2-demo"


def test_this_repository_has_releases_for_every_package() -> None:
    from workspace import packages

    for name in packages(REPO_ROOT):
        assert list_releases(REPO_ROOT, name), name
