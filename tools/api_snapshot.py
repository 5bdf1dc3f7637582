"""Public-API compatibility: snapshots of a package's API and breaking changes since a ref.

Both read source code statically with griffe (nothing is imported), so they work on any
git revision. ``find_breaking_changes`` is the library form of the CI / release check
(``tools/api_check.py``): it extracts the package's sources at ``ref`` with ``git
archive`` (no worktree or branch is created, so concurrent checks cannot collide) and
compares them with the working tree (or another ref) using ``griffe.find_breaking_changes``.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# -- snapshot ---------------------------------------------------------------------------


def api_snapshot(
    package: str, *, search_paths: list[str | Path] | None = None
) -> dict[str, dict[str, Any]]:
    """``{qualified name: description}`` for every public object of ``package`` (an
    import name such as ``"tttv2.core"``), found on ``search_paths`` (default: where
    Python would import it from).

    Descriptions are ``{"kind": "function", "signature": "(x: int) -> int"}``,
    ``{"kind": "class", "bases": [...], "signature": "(spec, device=None)"}``,
    ``{"kind": "attribute" | "property", "annotation": ...}`` or
    ``{"kind": "alias", "target": "torch.nn.Module"}`` for re-exports from other
    packages. Submodules not starting with ``_`` are walked; inside a module, members
    count when griffe considers them public (``__all__`` when present)."""
    import griffe

    kwargs: dict[str, Any] = {"allow_inspection": False, "try_relative_path": False}
    if search_paths is not None:
        kwargs["search_paths"] = [str(p) for p in search_paths]
    root = griffe.load(package, **kwargs)
    out: dict[str, dict[str, Any]] = {}
    _walk_module(root, package, out)
    return dict(sorted(out.items()))


def _walk_module(module: Any, path: str, out: dict[str, dict[str, Any]]) -> None:
    out[path] = {"kind": "module"}
    for name, member in sorted(module.members.items()):
        if member.is_alias:
            try:
                target = member.final_target
            except Exception:  # alias to another package (e.g. torch): record where it points
                if member.is_public:
                    out[f"{path}.{name}"] = {"kind": "alias", "target": member.target_path}
                continue
            if target.is_module:
                continue  # `from x import submodule`: the module is described at its own path
            if member.is_public:
                _describe(target, f"{path}.{name}", out)
            continue
        if member.is_module:
            if not name.startswith("_"):
                _walk_module(member, f"{path}.{name}", out)
            continue
        if member.is_public:
            _describe(member, f"{path}.{name}", out)


def _describe(obj: Any, path: str, out: dict[str, dict[str, Any]]) -> None:
    if obj.is_function:
        out[path] = {"kind": "function", "signature": _signature(obj)}
    elif obj.is_class:
        init = obj.members.get("__init__")
        signature = None
        if init is not None:
            try:
                signature = _signature(
                    init.final_target if init.is_alias else init, skip_first=True
                )
            except Exception:
                signature = None
        out[path] = {"kind": "class", "bases": [str(b) for b in obj.bases], "signature": signature}
        for name, member in sorted(obj.members.items()):
            if name == "__init__" or not member.is_public or name.startswith("_"):
                continue
            try:
                target = member.final_target if member.is_alias else member
            except Exception:
                continue
            _describe(target, f"{path}.{name}", out)
    elif obj.is_attribute:
        kind = "property" if "property" in obj.labels else "attribute"
        out[path] = {
            "kind": kind,
            "annotation": str(obj.annotation) if obj.annotation is not None else None,
        }
    else:
        out[path] = {"kind": str(obj.kind.value)}


def _signature(func: Any, skip_first: bool | None = None) -> str:
    """``(a: int, /, b=1, *, c) -> R`` from a griffe Function (``self``/``cls`` dropped)."""
    params = list(func.parameters)
    if skip_first is None:
        skip_first = (
            func.parent is not None and func.parent.is_class and "staticmethod" not in func.labels
        )
    if skip_first and params:
        params = params[1:]
    parts: list[str] = []
    kinds = [p.kind.name for p in params]
    for i, p in enumerate(params):
        kind = p.kind.name
        if kind == "keyword_only" and "var_positional" not in kinds and "*" not in parts:
            parts.append("*")
        text = {"var_positional": "*", "var_keyword": "**"}.get(kind, "") + p.name
        if p.annotation is not None:
            text += f": {p.annotation}"
        if p.default is not None:
            text += f" = {p.default}" if p.annotation is not None else f"={p.default}"
        parts.append(text)
        if kind == "positional_only" and (
            i + 1 == len(params) or params[i + 1].kind.name != "positional_only"
        ):
            parts.append("/")
    returns = f" -> {func.returns}" if func.returns is not None else ""
    return "(" + ", ".join(parts) + ")" + returns


# -- breaking changes ---------------------------------------------------------------------


@dataclass(frozen=True)
class BreakingChange:
    """One breaking change found by griffe: its kind, the object, old and new values."""

    kind: str  # griffe's BreakageKind text, e.g. "Parameter was removed"
    path: str  # the object, e.g. "tttv2.core.create_module"
    old: str
    new: str

    def __str__(self) -> str:
        detail = f" (was: {self.old})" if self.old and self.new == "" else ""
        if self.old and self.new:
            detail = f" ({self.old} -> {self.new})"
        return f"{self.path}: {self.kind}{detail}"


@dataclass(frozen=True)
class PackageSource:
    """Where a workspace package's code lives: its folder, the folder on ``sys.path``
    (``src`` or the package folder itself) and its import name."""

    directory: Path
    search_path: Path
    import_name: str


def resolve_package(repo_root: str | Path, package: str | Path) -> PackageSource:
    """Find a package by folder (absolute or relative to ``repo_root``), distribution
    name (``tttv2-core``) or import name (``tttv2.core``) among ``repo_root/packages/*``."""
    root = Path(repo_root).resolve()
    candidates = [Path(package), root / package]
    for folder in candidates:
        if (folder / "pyproject.toml").is_file():
            return _source_of(folder.resolve())
    found = []
    for pyproject in sorted(root.glob("packages/*/pyproject.toml")):
        source = _source_of(pyproject.parent)
        name = tomllib.loads(pyproject.read_text()).get("project", {}).get("name")
        found.append(f"{name} ({source.import_name})")
        if package in (name, source.import_name):
            return source
    raise ValueError(
        f"no package {str(package)!r} under {root}/packages; known: {', '.join(found) or '(none)'}"
    )


def _source_of(folder: Path) -> PackageSource:
    data = tomllib.loads((folder / "pyproject.toml").read_text())
    search = folder / "src" if (folder / "src").is_dir() else folder
    import_name = data.get("tool", {}).get("towncrier", {}).get("package")
    if not import_name:
        inits = sorted(search.glob("**/__init__.py"), key=lambda p: (len(p.parts), str(p)))
        inits = [p for p in inits if "tests" not in p.relative_to(search).parts]
        if not inits:
            raise ValueError(f"{folder}: no Python package (no __init__.py under {search})")
        import_name = ".".join(inits[0].parent.relative_to(search).parts)
    return PackageSource(folder, search, import_name)


def _git(repo_root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(repo_root), *args], capture_output=True, check=False)


def _extract(repo_root: Path, ref: str, rel: str, dest: Path) -> bool:
    """``git archive`` the folder ``rel`` at ``ref`` into ``dest``; False if absent there."""
    proc = _git(repo_root, "archive", "--format=tar", ref, "--", rel)
    if proc.returncode != 0:
        return False
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return True


def _load(import_name: str, search_path: Path) -> Any:
    import griffe

    try:
        return griffe.load(
            import_name,
            search_paths=[str(search_path)],
            try_relative_path=False,
            allow_inspection=False,
        )
    except ModuleNotFoundError:
        return None


def find_breaking_changes(
    repo_root: str | Path, package: str | Path, ref: str, *, new_ref: str | None = None
) -> list[BreakingChange]:
    """Breaking changes of ``package``'s public API from git ``ref`` to the working tree
    (or to ``new_ref``). ``package``: folder, distribution or import name (see
    :func:`resolve_package`). Returns ``[]`` when the package did not exist at ``ref``;
    raises ``ValueError`` for an unknown ref."""
    import griffe

    root = Path(repo_root).resolve()
    for r in (ref, new_ref):
        if (
            r is not None
            and _git(root, "rev-parse", "--verify", "--quiet", f"{r}^{{commit}}").returncode != 0
        ):
            raise ValueError(f"unknown git ref {r!r} in {root}")
    source = resolve_package(root, package)
    rel = source.search_path.relative_to(root).as_posix()
    with tempfile.TemporaryDirectory(prefix="tttv2-api-") as tmp:
        old_dir = Path(tmp) / "old"
        if not _extract(root, ref, rel, old_dir):
            return []
        old = _load(source.import_name, old_dir / rel)
        if old is None:
            return []
        if new_ref is None:
            new = _load(source.import_name, source.search_path)
        else:
            new_dir = Path(tmp) / "new"
            new = (
                _load(source.import_name, new_dir / rel)
                if _extract(root, new_ref, rel, new_dir)
                else None
            )
        if new is None:
            return [
                BreakingChange("Package was removed", source.import_name, source.import_name, "")
            ]
        return [_convert(b) for b in griffe.find_breaking_changes(old, new)]


def _convert(breakage: Any) -> BreakingChange:
    path = breakage.obj.path
    old, new = breakage.old_value, breakage.new_value
    name = getattr(old, "name", None) or getattr(new, "name", None)
    if (
        name is not None
        and type(old).__name__ in ("Parameter", "NoneType")
        and type(new).__name__
        in (
            "Parameter",
            "NoneType",
        )
    ):
        path = f"{path}({name})"
    return BreakingChange(breakage.kind.value, path, _text(old), _text(new))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "path") and hasattr(value, "kind"):  # a griffe object
        return f"{value.kind.value} {value.path}"
    return str(value)
