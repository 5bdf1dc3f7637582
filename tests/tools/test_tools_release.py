"""tools/release.py end to end on a synthetic workspace, and rebuilding an older release."""

import hashlib
import zipfile
from pathlib import Path

import pytest
from conftest import commit_all, sh, tool
from release import bump_version, write_static_version
from releases import list_releases

PKG = Path("packages/tttv2-demo")
INIT = PKG / "src/tttv2/demo/__init__.py"


def _fragment(repo: Path, name: str, text: str) -> None:
    (repo / PKG / "changes" / name).write_text(text + "\n")


def _status(repo: Path) -> str:
    return sh(["git", "status", "--porcelain"], repo).stdout


def test_bad_input_and_refusals(demo_repo: Path) -> None:
    proc = tool(demo_repo, "release", "tttv2-nope", "--bump", "minor", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: unknown package 'tttv2-nope'; valid packages: tttv2-demo"
    assert tool(demo_repo, "release", "tttv2-demo", "--bump", "huge", check=False).returncode == 2

    proc = tool(demo_repo, "release", "tttv2-demo", "--bump", "minor", check=False)
    assert (
        proc.returncode == 1 and "no news fragments in packages/tttv2-demo/changes/" in proc.stderr
    )
    assert len(proc.stderr.strip().splitlines()) == 1

    _fragment(demo_repo, "+x.feature.md", "Uncommitted fragment.")
    proc = tool(demo_repo, "release", "tttv2-demo", "--bump", "minor", check=False)
    assert proc.returncode == 1 and "uncommitted changes" in proc.stderr


def test_dry_run_changes_nothing(demo_repo: Path) -> None:
    _fragment(demo_repo, "+wave.feature.md", "Added wave().")
    head = commit_all(demo_repo, "fragment")
    proc = tool(demo_repo, "release", "tttv2-demo", "--bump", "minor", "--dry-run")
    assert "tttv2-demo: 1.0.0 -> 1.1.0 (minor)" in proc.stdout
    assert "Added wave()." in proc.stdout  # the changelog draft
    assert sh(["git", "rev-parse", "HEAD"], demo_repo).stdout.strip() == head
    assert _status(demo_repo) == "" and sh(["git", "tag"], demo_repo).stdout == ""


@pytest.mark.slow
def test_release_twice_then_rebuild_the_older_wheel(demo_repo: Path, tmp_path: Path) -> None:
    # Release 1.1.0: a new function, a feature fragment.
    init = demo_repo / INIT
    init.write_text(init.read_text() + '\n\ndef wave() -> str:\n    return "wave 1.1"\n')
    _fragment(demo_repo, "+wave.feature.md", "Added wave().")
    commit_all(demo_repo, "add wave")
    proc = tool(demo_repo, "release", "tttv2-demo", "--bump", "minor")
    assert "released tttv2-demo 1.1.0" in proc.stdout
    assert (
        sh(["git", "log", "-1", "--format=%s"], demo_repo).stdout.strip()
        == "release tttv2-demo 1.1.0"
    )
    assert sh(["git", "tag"], demo_repo).stdout.split() == ["tttv2-demo-v1.1.0"]
    changelog = (demo_repo / PKG / "CHANGELOG.md").read_text()
    assert "## 1.1.0" in changelog and "Added wave()." in changelog
    assert not (demo_repo / PKG / "changes" / "+wave.feature.md").exists()
    assert 'version = "1.1.0"' in (demo_repo / PKG / "pyproject.toml").read_text()
    assert 'version = "1.1.0"' in (demo_repo / "uv.lock").read_text()
    assert _status(demo_repo) == ""

    # A breaking change (wave removed) is refused as minor and prints the breakage ...
    init.write_text(init.read_text().split("\n\ndef wave")[0] + "\n")
    _fragment(demo_repo, "+no-wave.breaking.md", "Removed wave().")
    commit_all(demo_repo, "drop wave")
    proc = tool(demo_repo, "release", "tttv2-demo", "--bump", "minor", check=False)
    assert proc.returncode == 1
    assert "wave" in proc.stdout and "refusing a minor release" in proc.stderr
    # ... and released as major.
    tool(demo_repo, "release", "tttv2-demo", "--bump", "major")
    versions = [r.version for r in list_releases(demo_repo, "tttv2-demo")]
    assert versions == ["1.0.0", "1.1.0", "2.0.0"]
    assert sh(["git", "tag"], demo_repo).stdout.split() == [
        "tttv2-demo-v1.1.0",
        "tttv2-demo-v2.0.0",
    ]

    # Rebuild the older release from history alone, twice: same bytes, old code, old metadata.
    hashes = []
    for out in (tmp_path / "wh1", tmp_path / "wh2"):
        proc = tool(
            demo_repo,
            "wheelhouse",
            "--package",
            "tttv2-demo",
            "--version",
            "1.1.0",
            "--out",
            str(out),
        )
        (wheel,) = out.glob("*.whl")
        assert wheel.name == "tttv2_demo-1.1.0-py3-none-any.whl"
        hashes.append(hashlib.sha256(wheel.read_bytes()).hexdigest())
    assert hashes[0] == hashes[1]
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read("tttv2_demo-1.1.0.dist-info/METADATA").decode()
        code = zf.read("tttv2/demo/__init__.py").decode()
    assert "Name: tttv2-demo" in metadata and "Version: 1.1.0" in metadata
    assert 'return "wave 1.1"' in code  # the 1.1.0 code, although HEAD no longer has wave()
    proc = tool(
        demo_repo, "wheelhouse", "--package", "tttv2-demo", "--version", "1.1.0", "--out", str(out)
    )
    assert proc.stdout.startswith("present tttv2_demo-1.1.0-py3-none-any.whl")


def test_fallback_version_bump(tmp_path: Path) -> None:
    assert bump_version("2.0.0", "minor") == "2.1.0"
    assert bump_version("2.1.3", "patch") == "2.1.4"
    assert bump_version("2.1.3", "major") == "3.0.0"
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\nversion = "2.0.0"\n\n[tool.x]\nversion = "keep"\n')
    write_static_version(pyproject, "2.1.0")
    assert (
        pyproject.read_text()
        == '[project]\nname = "x"\nversion = "2.1.0"\n\n[tool.x]\nversion = "keep"\n'
    )
