"""The model kit's released-pins check (``tttv2.testing.model_kit.released_pins``) against
fake installed distributions (dist-info folders on ``sys.path``) and fake project folders:
it passes a wheel install that satisfies the pin and fails, naming the distribution, a pin
the installed version misses, an editable install, a distribution outside the environment,
a missing one and a wrong entry point."""

import importlib
import json
import sys
import textwrap
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tttv2.testing.model_kit import (
    check_architecture_entry_point,
    check_installed_release,
    check_module_in_environment,
    pinned_releases,
)

pytest_plugins = ["pytester"]


def install_fake_dist(
    site: Path,
    name: str,
    version: str,
    *,
    editable: bool = False,
    entry_points: dict[str, str] | None = None,
) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    if editable:
        (info / "direct_url.json").write_text(
            json.dumps({"url": "file:///src/x", "dir_info": {"editable": True}})
        )
    if entry_points:
        lines = [f"{arch} = {module}" for arch, module in entry_points.items()]
        (info / "entry_points.txt").write_text("[tttv2.models]\n" + "\n".join(lines) + "\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "env" / "site-packages"
    site.mkdir(parents=True)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    yield site
    # each test makes its own fake plugin package: forget the module it imported
    for name in [name for name in sys.modules if name.split(".")[0] == "fake_model_pkg"]:
        del sys.modules[name]


def write_project(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(textwrap.dedent(body))
    return folder


def test_pins_come_from_dependencies_and_dependency_groups(tmp_path):
    project = write_project(
        tmp_path / "proj",
        """
        [project]
        name = "p"
        dependencies = ["tttv2-core==4.0.*", "torch>=2.4", "tttv2-testing>=3"]
        [dependency-groups]
        dev = ["pytest>=8", "tttv2-testing[hf]==3.1.*", {include-group = "other"}]
        other = ["tttv2-serve==1.*"]
        """,
    )
    pins = pinned_releases(project)
    assert sorted(pins) == ["tttv2-core", "tttv2-serve", "tttv2-testing"]
    assert str(pins["tttv2-core"].specifier) == "==4.0.*"
    # both testing pins hold: 3.0.1 satisfies >=3 but not ==3.1.*
    assert pins["tttv2-testing"].specifier.contains("3.1.2")
    assert not pins["tttv2-testing"].specifier.contains("3.0.1")


def test_installed_release_that_satisfies_its_pin_passes(site):
    install_fake_dist(site, "tttv2-fake", "1.2.0")
    check_installed_release(Requirement("tttv2-fake==1.2.*"), env=site.parent)


def test_installed_version_outside_the_pin_fails_naming_both(site):
    install_fake_dist(site, "tttv2-fake", "1.2.0")
    with pytest.raises(AssertionError, match=r"tttv2-fake 1\.2\.0 .* pins tttv2-fake==1\.3\.\*"):
        check_installed_release(Requirement("tttv2-fake==1.3.*"), env=site.parent)


def test_editable_install_fails(site):
    install_fake_dist(site, "tttv2-fake", "1.2.0", editable=True)
    with pytest.raises(AssertionError, match="tttv2-fake is installed editable"):
        check_installed_release(Requirement("tttv2-fake==1.2.*"), env=site.parent)


def test_install_outside_the_environment_fails(site, tmp_path):
    install_fake_dist(site, "tttv2-fake", "1.2.0")
    other_env = tmp_path / "other-env"
    other_env.mkdir()
    with pytest.raises(AssertionError, match="outside this environment"):
        check_installed_release(Requirement("tttv2-fake==1.2.*"), env=other_env)


def test_missing_distribution_fails(site):
    with pytest.raises(AssertionError, match="tttv2-not-there is not installed"):
        check_installed_release(Requirement("tttv2-not-there==1.0.*"), env=site.parent)


def test_workspace_editable_package_fails_both_checks():
    # In the workspace environment tttv2-core is an editable install of packages/tttv2-core.
    with pytest.raises(AssertionError, match="tttv2-core is installed editable"):
        check_installed_release(Requirement("tttv2-core>=0"))
    with pytest.raises(AssertionError, match=r"tttv2\.core is imported from .*outside"):
        check_module_in_environment("tttv2.core")


def make_plugin_package(site: Path, package: str) -> None:
    (site / package).mkdir()
    (site / package / "__init__.py").write_text("")
    (site / package / "plugin.py").write_text("ARCHITECTURE = 'FakeForCausalLM'\n")


def test_architecture_entry_point_passes_and_fails_for_another_package(site):
    make_plugin_package(site, "fake_model_pkg")
    install_fake_dist(
        site, "fake-model", "0.1.0", entry_points={"FakeForCausalLM": "fake_model_pkg.plugin"}
    )
    check_architecture_entry_point("FakeForCausalLM", "fake_model_pkg.plugin", "fake_model_pkg")
    with pytest.raises(AssertionError, match="not inside other_pkg"):
        check_architecture_entry_point("FakeForCausalLM", "fake_model_pkg.plugin", "other_pkg")
    with pytest.raises(AssertionError, match="names fake_model_pkg.plugin, the project declares"):
        check_architecture_entry_point("FakeForCausalLM", "fake_model_pkg", "fake_model_pkg")
    with pytest.raises(AssertionError, match="0 installed tttv2.models entry points"):
        check_architecture_entry_point(
            "OtherForCausalLM", "fake_model_pkg.plugin", "fake_model_pkg"
        )


def test_two_entry_points_for_one_architecture_fail(site):
    make_plugin_package(site, "fake_model_pkg")
    entry = {"FakeForCausalLM": "fake_model_pkg.plugin"}
    install_fake_dist(site, "fake-model", "0.1.0", entry_points=entry)
    install_fake_dist(site, "fake-model-two", "0.1.0", entry_points=entry)
    with pytest.raises(AssertionError, match="2 installed tttv2.models entry points"):
        check_architecture_entry_point("FakeForCausalLM", "fake_model_pkg.plugin", "fake_model_pkg")


def test_subclass_collects_one_test_per_pin_named_after_it(site, pytester):
    """The base class as a project uses it, in an inner pytest session: each pin is its own
    test whose id names the distribution, and only the unsatisfied pin fails."""
    make_plugin_package(site, "fake_model_pkg")
    install_fake_dist(site, "tttv2-fake", "1.2.0")
    install_fake_dist(
        site, "fake-model", "0.1.0", entry_points={"FakeForCausalLM": "fake_model_pkg.plugin"}
    )
    write_project(
        pytester.path,
        """
        [project]
        name = "fake-model"
        dependencies = ["tttv2-fake==1.2.*", "tttv2-missing==1.0.*", "torch"]
        [project.entry-points."tttv2.models"]
        FakeForCausalLM = "fake_model_pkg.plugin"
        """,
    )
    pytester.makepyfile(
        test_inner=f"""
        from pathlib import Path
        from tttv2.testing.model_kit import ReleasedPinsTests

        class TestReleasedPins(ReleasedPinsTests):
            project_dir = Path(__file__).parent
            package = "fake_model_pkg"
            architectures = ("FakeForCausalLM",)
            modules_from_environment = ("fake_model_pkg.plugin",)
            environment = Path({str(site.parent)!r})

        class TestWrongArchitectures(TestReleasedPins):
            architectures = ("FakeForCausalLM", "UndeclaredForCausalLM")
        """
    )
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-v", "-p", "no:tttv2"
    )
    result.stdout.fnmatch_lines(
        [
            "*TestReleasedPins::test_pinned_release_is_installed_from_a_wheel?tttv2-fake? PASSED*",
            "*TestReleasedPins::test_pinned_release_is_installed_from_a_wheel?tttv2-missing? FAILED*",
            "*TestReleasedPins::test_tttv2_code_comes_from_this_environment PASSED*",
            "*TestReleasedPins::test_architecture_entry_points PASSED*",
            "*TestWrongArchitectures::test_architecture_entry_points FAILED*",
        ]
    )
    result.stdout.fnmatch_lines(["*tttv2-missing is not installed*"])
    result.assert_outcomes(passed=5, failed=3)
