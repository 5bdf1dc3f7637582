"""A model project runs the released tttv2 wheels it pins, never the workspace sources.

A project's test file subclasses :class:`ReleasedPinsTests` (pytest collects the subclass,
named ``Test*``; this base is not collected)::

    class TestReleasedPins(ReleasedPinsTests):
        project_dir = Path(__file__).parents[1]
        package = "tttv2_model_gemma3"
        architectures = ("Gemma3ForCausalLM",)

and gets one test per pinned ``tttv2-*`` distribution (its id is the distribution's name):
installed in this environment from a wheel whose version satisfies the pin, not editable.
Also: ``tttv2.core`` is imported from this environment, and each architecture the project
declares under ``[project.entry-points."tttv2.models"]`` loads that plugin module of
``package``. The checks are plain functions too, for other uses."""

from __future__ import annotations

import importlib
import importlib.metadata as md
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from packaging.requirements import Requirement

PIN_PREFIX = "tttv2-"
MODELS_GROUP = "tttv2.models"


def read_pyproject(project_dir: Path) -> dict[str, Any]:
    """``project_dir/pyproject.toml`` as a table."""
    return tomllib.loads((Path(project_dir) / "pyproject.toml").read_text())


def pinned_releases(project_dir: Path, prefix: str = PIN_PREFIX) -> dict[str, Requirement]:
    """The requirements on distributions named ``prefix*`` in ``[project] dependencies`` and
    every ``[dependency-groups]`` list, by distribution name; a distribution required in
    several places gets the intersection of the specifiers (extras dropped)."""
    pyproject = read_pyproject(project_dir)
    lines = list(pyproject.get("project", {}).get("dependencies", []))
    for group in pyproject.get("dependency-groups", {}).values():
        lines.extend(entry for entry in group if isinstance(entry, str))
    pins: dict[str, Requirement] = {}
    for req in map(Requirement, lines):
        if not req.name.startswith(prefix):
            continue
        if req.name in pins:
            merged = pins[req.name]
            req = Requirement(f"{req.name}{merged.specifier & req.specifier}")
        else:
            req = Requirement(f"{req.name}{req.specifier}")
        pins[req.name] = req
    return pins


def declared_architectures(project_dir: Path) -> dict[str, str]:
    """``[project.entry-points."tttv2.models"]`` of the project: architecture -> module."""
    project = read_pyproject(project_dir).get("project", {})
    return dict(project.get("entry-points", {}).get(MODELS_GROUP, {}))


def this_environment() -> Path:
    """The running interpreter's environment (``sys.prefix``), resolved."""
    return Path(sys.prefix).resolve()


def check_installed_release(requirement: Requirement, env: Path | None = None) -> None:
    """Raise ``AssertionError`` unless ``requirement``'s distribution is installed under
    ``env`` (default: this environment) from a wheel whose version satisfies it: no
    ``direct_url.json`` (editable, workspace and other direct-URL installs record one; wheels
    from a find-links folder or an index do not)."""
    env = (env or this_environment()).resolve()
    name = requirement.name
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        raise AssertionError(f"{name} is not installed (the project pins {requirement})") from None
    if not requirement.specifier.contains(dist.version, prereleases=True):
        raise AssertionError(
            f"{name} {dist.version} is installed but the project pins {requirement}"
        )
    direct_url = dist.read_text("direct_url.json")
    if direct_url is not None:
        raise AssertionError(
            f"{name} is installed editable or from a direct URL, not from a released wheel "
            f"(direct_url.json: {direct_url.strip()})"
        )
    location = Path(str(dist.locate_file(""))).resolve()
    if not location.is_relative_to(env):
        raise AssertionError(f"{name} is installed in {location}, outside this environment {env}")


def check_module_in_environment(module_name: str, env: Path | None = None) -> None:
    """Raise ``AssertionError`` unless ``module_name`` imports from a file under ``env``."""
    env = (env or this_environment()).resolve()
    module = importlib.import_module(module_name)
    origin = getattr(module, "__file__", None)
    if origin is None or not Path(origin).resolve().is_relative_to(env):
        raise AssertionError(f"{module_name} is imported from {origin}, outside {env}")


def check_architecture_entry_point(architecture: str, module_name: str, package: str) -> None:
    """Raise ``AssertionError`` unless exactly one installed ``tttv2.models`` entry point is
    named ``architecture``, it names ``module_name``, that module is inside ``package``, and
    loading the entry point gives that module."""
    if module_name != package and not module_name.startswith(f"{package}."):
        raise AssertionError(f"{architecture}'s plugin {module_name} is not inside {package}")
    found = [ep for ep in md.entry_points(group=MODELS_GROUP) if ep.name == architecture]
    if len(found) != 1:
        values = [ep.value for ep in found]
        raise AssertionError(
            f"{len(found)} installed {MODELS_GROUP} entry points are named {architecture} "
            f"(expected one, {module_name}): {values}"
        )
    (entry_point,) = found
    if entry_point.value != module_name:
        raise AssertionError(
            f"the installed entry point {architecture} names {entry_point.value}, the project "
            f"declares {module_name} (reinstall the project)"
        )
    if entry_point.load() is not importlib.import_module(module_name):
        raise AssertionError(f"entry point {architecture} does not load module {module_name}")


class ReleasedPinsTests:
    """Base of a model project's released-pins tests; see the module docstring. Subclasses
    set ``project_dir`` (the folder of its pyproject.toml), ``package`` (its import package)
    and ``architectures`` (the ``tttv2.models`` entry points it declares; empty for none)."""

    project_dir: ClassVar[Path]
    package: ClassVar[str]
    architectures: ClassVar[tuple[str, ...]] = ()
    # Modules that must be imported from this environment's files, not the workspace's.
    modules_from_environment: ClassVar[tuple[str, ...]] = ("tttv2.core",)
    # The environment installs must lie in; None: this one (sys.prefix).
    environment: ClassVar[Path | None] = None

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "pinned_dist" in metafunc.fixturenames:
            pins = pinned_releases(self.project_dir)
            if not pins:
                raise ValueError(f"{self.project_dir}/pyproject.toml pins no {PIN_PREFIX}* release")
            metafunc.parametrize("pinned_dist", sorted(pins))

    def test_pinned_release_is_installed_from_a_wheel(self, pinned_dist: str) -> None:
        pin = pinned_releases(self.project_dir)[pinned_dist]
        check_installed_release(pin, self.environment)

    def test_tttv2_code_comes_from_this_environment(self) -> None:
        for module_name in self.modules_from_environment:
            check_module_in_environment(module_name, self.environment)

    def test_architecture_entry_points(self) -> None:
        declared: Mapping[str, str] = declared_architectures(self.project_dir)
        if sorted(declared) != sorted(self.architectures):
            raise AssertionError(
                f"pyproject.toml declares the architectures {sorted(declared)}, the test "
                f"expects {sorted(self.architectures)}"
            )
        for architecture, module_name in sorted(declared.items()):
            check_architecture_entry_point(architecture, module_name, self.package)
