"""Every sibling lower bound in packages/*/pyproject.toml names a release that has what we import.

For each workspace package and each tttv2-* dependency it declares, the lowest version that
dependency's specifier admits (a release found in git history, or the sibling's unreleased
working-tree version) is read from git, and every `import tttv2.<sibling>...` /
`from tttv2.<sibling>... import NAME` in the package's working-tree src/ (function bodies
included) must resolve in it: the module exists and NAME is a submodule or is bound at the
module's top level (directly, under if/try, or through `from ... import *`). A static check:
behaviour that changed between releases is the package tests' business, not this one's.
"""

from __future__ import annotations

import ast
import io
import subprocess
import tarfile
import tomllib
from dataclasses import dataclass

import pytest
from conftest import REPO_ROOT
from packaging.requirements import Requirement
from packaging.version import Version
from releases import list_releases
from workspace import Package, packages

PACKAGES = packages(REPO_ROOT)


@dataclass(frozen=True)
class SiblingImport:
    module: str  # e.g. tttv2.core.specs
    name: str | None  # the NAME of `from module import NAME`; None for `import module`
    where: str  # importing file, relative to the repository root


def _modules_of(files: dict[str, str], src_prefix: str) -> dict[str, str]:
    """{dotted module name: source} for the .py files under `src_prefix` (a path ending in /)."""
    modules = {}
    for path, text in files.items():
        if path.startswith(src_prefix) and path.endswith(".py"):
            parts = path[len(src_prefix) : -len(".py")].split("/")
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = text
    return modules


def _working_tree_modules(pkg: Package) -> dict[str, str]:
    files = {
        p.relative_to(REPO_ROOT).as_posix(): p.read_text() for p in (pkg.dir / "src").rglob("*.py")
    }
    return _modules_of(files, f"{pkg.rel(REPO_ROOT)}/src/")


def _modules_at(pkg: Package, commit: str) -> dict[str, str]:
    src = f"{pkg.rel(REPO_ROOT)}/src/"
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", commit, src],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        files = {
            m.name: tar.extractfile(m).read().decode()
            for m in tar.getmembers()
            if m.isfile() and m.name.endswith(".py")
        }
    return _modules_of(files, src)


def sibling_imports(modules: dict[str, str], sibling: str, pkg: Package) -> set[SiblingImport]:
    """Every import of `sibling` (an import name, e.g. tttv2.core) anywhere in `modules`."""
    found = set()
    for module, text in modules.items():
        where = f"{pkg.rel(REPO_ROOT)}/src/{module.replace('.', '/')}"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                targets = [(alias.name, None) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [(node.module, alias.name) for alias in node.names]
            else:
                continue
            for target, name in targets:
                if target == sibling or target.startswith(sibling + "."):
                    found.add(SiblingImport(target, name, where))
    return found


def _bound_names(text: str) -> tuple[set[str], list[str]]:
    """Names bound at a module's top level (also under if/try), and its `import *` sources."""
    names: set[str] = set()
    stars: list[str] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
            elif isinstance(node, ast.Import | ast.ImportFrom):
                for alias in node.names:
                    if alias.name == "*" and isinstance(node, ast.ImportFrom) and node.module:
                        stars.append(node.module)
                    elif alias.name != "*":
                        names.add(alias.asname or alias.name.split(".")[0])
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                visit(getattr(node, "finalbody", []))

    visit(ast.parse(text).body)
    return names, stars


def _literal_all(text: str) -> set[str] | None:
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            try:
                return set(ast.literal_eval(node.value))
            except ValueError:
                return None
    return None


def module_names(modules: dict[str, str], module: str, *, star: bool = False) -> set[str]:
    """Names `from module import NAME` finds (star=True: the names `import *` brings)."""
    if module not in modules:
        return set()
    names, stars = _bound_names(modules[module])
    for source in stars:
        names |= module_names(modules, source, star=True)
    if star:
        exported = _literal_all(modules[module])
        return exported if exported is not None else {n for n in names if not n.startswith("_")}
    return names


def unresolved(modules: dict[str, str], wanted: set[SiblingImport]) -> list[str]:
    """The imports in `wanted` that `modules` (a sibling's source) does not provide."""
    problems = []
    for imp in sorted(wanted, key=lambda i: (i.module, i.name or "", i.where)):
        if imp.module not in modules:
            problems.append(f"{imp.where}: module {imp.module} does not exist")
        elif (
            imp.name is not None
            and f"{imp.module}.{imp.name}" not in modules
            and imp.name not in module_names(modules, imp.module)
        ):
            problems.append(f"{imp.where}: {imp.module} has no {imp.name}")
    return problems


def lowest_admitted(sibling: Package, requirement: Requirement) -> tuple[str, dict[str, str]]:
    """(version, modules) of the lowest release (or unreleased working tree) `requirement`
    admits."""
    candidates = [(Version(r.version), r.commit) for r in list_releases(REPO_ROOT, sibling.name)]
    if Version(sibling.version) not in {v for v, _ in candidates}:
        candidates.append((Version(sibling.version), None))
    admitted = sorted(
        (v, c) for v, c in candidates if requirement.specifier.contains(v, prereleases=True)
    )
    assert admitted, f"{requirement} admits no release of {sibling.name} nor its working tree"
    version, commit = admitted[0]
    modules = _working_tree_modules(sibling) if commit is None else _modules_at(sibling, commit)
    return str(version), modules


def _sibling_requirements() -> list[tuple[str, Requirement]]:
    pairs = []
    for name, pkg in PACKAGES.items():
        project = tomllib.loads((pkg.dir / "pyproject.toml").read_text())["project"]
        for dep in map(Requirement, project.get("dependencies", [])):
            if dep.name in PACKAGES:
                pairs.append((name, dep))
    return pairs


SIBLING_REQUIREMENTS = _sibling_requirements()


def test_the_workspace_has_sibling_dependencies() -> None:
    # Guards the parametrisation below against silently collecting nothing.
    assert ("tttv2-blocks", "tttv2-core") in {(p, r.name) for p, r in SIBLING_REQUIREMENTS}


@pytest.mark.parametrize(
    ("package", "requirement"),
    SIBLING_REQUIREMENTS,
    ids=[f"{p}->{r}" for p, r in SIBLING_REQUIREMENTS],
)
def test_lower_bound_release_provides_every_import(package: str, requirement: Requirement) -> None:
    pkg, sibling = PACKAGES[package], PACKAGES[requirement.name]
    wanted = sibling_imports(_working_tree_modules(pkg), sibling.import_name, pkg)
    version, modules = lowest_admitted(sibling, requirement)
    problems = unresolved(modules, wanted)
    assert not problems, (
        f"{package} declares {requirement}, but {sibling.name} {version} lacks what it imports "
        f"(raise the lower bound to the first release that has it):\n" + "\n".join(problems)
    )


def test_the_check_finds_the_gaps_of_the_2_0_0_placeholders() -> None:
    # The 2.0.0 releases are placeholders: tttv2-core 2.0.0 has no errors module and
    # tttv2-blocks 2.0.0 no DecoderLayer; 2.1.0 has both. These gaps once hid behind `>=2.0`.
    wanted = {
        "tttv2-core": SiblingImport("tttv2.core.errors", "TTTv2Error", "hw"),
        "tttv2-blocks": SiblingImport("tttv2.blocks", "DecoderLayer", "cli"),
    }
    for name, imp in wanted.items():
        old = lowest_admitted(PACKAGES[name], Requirement(f"{name}>=2.0"))
        new = lowest_admitted(PACKAGES[name], Requirement(f"{name}>=2.1"))
        assert (old[0], new[0]) == ("2.0.0", "2.1.0")
        assert unresolved(old[1], {imp}) == [
            f"hw: module {imp.module} does not exist"
            if name == "tttv2-core"
            else f"cli: {imp.module} has no {imp.name}"
        ]
        assert unresolved(new[1], {imp}) == []


def test_names_reexported_through_import_star_resolve() -> None:
    modules = {
        "pkg": "from pkg.inner import *\n",
        "pkg.inner": "__all__ = ['Public']\nclass Public: ...\nclass Hidden: ...\n",
    }
    imports = {SiblingImport("pkg", n, "f") for n in ("Public", "Hidden", "inner")}
    assert unresolved(modules, imports) == ["f: pkg has no Hidden"]
