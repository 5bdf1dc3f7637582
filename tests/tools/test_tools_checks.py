"""tools/api_check.py and tools/changelog_check.py on a synthetic package."""

from pathlib import Path

from api_check import check_api
from changelog_check import check, fragment_type
from conftest import commit_all, tool

INIT = Path("packages/tttv2-demo/src/tttv2/demo/__init__.py")
CHANGES = Path("packages/tttv2-demo/changes")


def test_removed_function_is_breaking(demo_repo: Path) -> None:
    (demo_repo / INIT).write_text('"""Demo package."""\n')
    lines = check_api(demo_repo, "tttv2-demo")  # default: against the last release
    assert len(lines) == 1 and "greet" in lines[0], lines
    proc = tool(demo_repo, "api_check", "tttv2-demo", check=False)
    assert proc.returncode == 1
    assert "greet" in proc.stdout and "1 breaking API change(s)" in proc.stderr


def test_changed_signature_is_breaking_and_additions_are_not(demo_repo: Path) -> None:
    init = demo_repo / INIT
    init.write_text(init.read_text() + "\n\ndef wave() -> None:\n    pass\n")
    assert check_api(demo_repo, "tttv2-demo") == []
    init.write_text(
        init.read_text().replace("def greet(name: str)", "def greet(name: str, loud: bool)")
    )
    lines = check_api(demo_repo, "tttv2-demo")
    assert len(lines) == 1 and "loud" in lines[0], lines


def test_private_names_are_not_public_api(demo_repo: Path) -> None:
    init = demo_repo / INIT
    init.write_text(init.read_text() + "\n\ndef _helper() -> None:\n    pass\n")
    commit_all(demo_repo, "add private helper")
    init.write_text(init.read_text().replace("def _helper", "def _renamed"))
    assert check_api(demo_repo, "tttv2-demo") == []


def test_declared_breaking_change_passes_ci_mode_only(demo_repo: Path) -> None:
    (demo_repo / INIT).write_text('"""Demo package."""\n')
    (demo_repo / CHANGES / "+drop-greet.breaking.md").write_text("Removed greet().\n")
    assert tool(demo_repo, "api_check", "tttv2-demo", check=False).returncode == 1
    proc = tool(demo_repo, "api_check", "tttv2-demo", "--allow-declared")
    assert "declared by +drop-greet.breaking.md" in proc.stdout


def test_against_explicit_ref_and_bad_ref(demo_repo: Path) -> None:
    (demo_repo / INIT).write_text('"""Demo package."""\n')
    assert (
        tool(demo_repo, "api_check", "tttv2-demo", "--against", "HEAD", check=False).returncode == 1
    )
    proc = tool(demo_repo, "api_check", "tttv2-demo", "--against", "no-such-ref", check=False)
    assert proc.returncode == 2 and "unknown git ref" in proc.stderr


def test_fragment_names() -> None:
    types = ["breaking", "feature", "bugfix"]
    assert fragment_type(Path("123.feature.md"), types) == "feature"
    assert fragment_type(Path("+slug.breaking.md"), types) == "breaking"
    assert fragment_type(Path("7.bugfix.2.md"), types) == "bugfix"
    assert fragment_type(Path(".gitkeep"), types) is None
    assert fragment_type(Path("feature.md"), types) is None


def test_changed_package_needs_a_fragment(demo_repo: Path) -> None:
    ok, message = check(demo_repo, "tttv2-demo")
    assert ok and "unchanged since 1.0.0" in message
    (demo_repo / CHANGES.parent / "CHANGELOG.md").write_text("edited by hand\n")
    assert check(demo_repo, "tttv2-demo")[0], "CHANGELOG.md edits alone need no fragment"
    (demo_repo / INIT.parent / "extra.py").write_text("X = 1\n")  # untracked files count
    ok, message = check(demo_repo, "tttv2-demo")
    assert not ok and "extra.py" in message and "no news fragment" in message
    proc = tool(demo_repo, "changelog_check", "tttv2-demo", check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("error: tttv2-demo: ")
    (demo_repo / CHANGES / "+extra.feature.md").write_text("Added extra.\n")
    commit_all(demo_repo, "change with fragment")
    ok, message = check(demo_repo, "tttv2-demo")
    assert ok and "+extra.feature.md" in message
