"""API snapshots and the griffe breaking-change check, on a throwaway git repository
holding two versions of a small package laid out like the workspace packages."""

import json
import subprocess
from pathlib import Path

import pytest
from api_snapshot import api_snapshot, find_breaking_changes, resolve_package

PYPROJECT = """\
[project]
name = "demo-pkg"
version = "1.0.0"

[tool.towncrier]
package = "demo.pkg"
"""

V1 = '''\
"""Demo package."""

__all__ = ["Widget", "area", "scale"]


def area(width: int, height: int = 1) -> int:
    return width * height


def scale(x: float, factor: float) -> float:
    return x * factor


class Widget:
    size: int = 1

    def __init__(self, size: int, *, name: str = "w") -> None:
        self.size = size

    def grow(self, by: int) -> int:
        return self.size + by

    def _private(self) -> None: ...
'''


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A repository whose HEAD is version 1 of packages/demo-pkg (import name demo.pkg)."""
    pkg = tmp_path / "packages" / "demo-pkg"
    (pkg / "src" / "demo" / "pkg").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(PYPROJECT)
    (pkg / "src" / "demo" / "pkg" / "__init__.py").write_text(V1)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "v1")
    return tmp_path


def write_version(repo: Path, source: str) -> None:
    (repo / "packages" / "demo-pkg" / "src" / "demo" / "pkg" / "__init__.py").write_text(source)


def test_snapshot_lists_public_names_and_signatures(repo):
    snap = api_snapshot("demo.pkg", search_paths=[repo / "packages" / "demo-pkg" / "src"])
    assert snap["demo.pkg.area"] == {
        "kind": "function",
        "signature": "(width: int, height: int = 1) -> int",
    }
    assert snap["demo.pkg.Widget"]["kind"] == "class"
    assert snap["demo.pkg.Widget"]["signature"] == "(size: int, *, name: str = 'w') -> None"
    assert snap["demo.pkg.Widget.grow"]["signature"] == "(by: int) -> int"
    assert "demo.pkg.Widget._private" not in snap
    json.dumps(snap)  # plain data, storable as a file


def test_snapshot_of_tttv2_core_covers_its_public_api():
    snap = api_snapshot("tttv2.core")
    assert snap["tttv2.core.create_module"]["kind"] == "function"
    assert "hidden_dim: int" in snap["tttv2.core.AttentionSpec"]["signature"]
    assert snap["tttv2.core.AttentionSpec.softmax_scale"]["kind"] == "property"
    assert "tttv2.core.specs.RopeSpec" in snap  # public submodules are walked


def test_unchanged_package_has_no_breaking_changes(repo):
    assert find_breaking_changes(repo, "demo-pkg", "HEAD") == []


def test_removed_function_and_parameter_are_reported(repo):
    write_version(
        repo,
        V1.replace("def scale(x: float, factor: float) -> float:\n    return x * factor\n", "")
        .replace('"scale"', "")
        .replace("def area(width: int, height: int = 1)", "def area(width: int)"),
    )
    changes = find_breaking_changes(repo, "demo-pkg", "HEAD")
    found = {(c.kind, c.path) for c in changes}
    assert ("Public object was removed", "demo.pkg.scale") in found
    assert ("Parameter was removed", "demo.pkg.area(height)") in found
    assert any("area(height)" in str(c) for c in changes)


def test_new_required_parameter_and_method_change_are_reported(repo):
    write_version(
        repo, V1.replace("def grow(self, by: int)", "def grow(self, by: int, limit: int)")
    )
    git(repo, "commit", "-qam", "v2")
    changes = find_breaking_changes(repo, "packages/demo-pkg", "HEAD~1", new_ref="HEAD")
    assert [(c.kind, c.path) for c in changes] == [
        ("Parameter was added as required", "demo.pkg.Widget.grow(limit)")
    ]
    # compatible change: a new optional parameter is not breaking
    write_version(
        repo, V1.replace("def grow(self, by: int)", "def grow(self, by: int, limit: int = 0)")
    )
    assert find_breaking_changes(repo, "demo.pkg", "HEAD~1") == []


def test_package_resolution_and_bad_input(repo):
    by_name = resolve_package(repo, "demo-pkg")
    assert (
        by_name == resolve_package(repo, "demo.pkg") == resolve_package(repo, "packages/demo-pkg")
    )
    assert by_name.import_name == "demo.pkg" and by_name.search_path.name == "src"
    with pytest.raises(ValueError, match="known: demo-pkg"):
        resolve_package(repo, "nope")
    with pytest.raises(ValueError, match="unknown git ref"):
        find_breaking_changes(repo, "demo-pkg", "v9.9")


def test_package_absent_at_ref_is_not_breaking(repo):
    other = repo / "packages" / "other-pkg" / "src" / "other"
    other.mkdir(parents=True)
    (other.parent.parent / "pyproject.toml").write_text('[project]\nname = "other-pkg"\n')
    (other / "__init__.py").write_text("def f(): ...\n")
    assert resolve_package(repo, "other-pkg").import_name == "other"
    assert find_breaking_changes(repo, "other-pkg", "HEAD") == []
