"""Architecture rules over packages/*/src, read statically (nothing is imported):

* no module reads another module's private attributes: ``obj._name`` where ``obj`` is not
  ``self``/``cls``/``super()`` and no class of the same file defines ``_name``, and
  ``from module import _name``; reads of torch internals go through the one adapter,
  ``tttv2/core/torch_internals.py``; annotations are not reads;
* no import cycle among the modules of packages/: every import at module level, those
  under ``if TYPE_CHECKING:`` too; imports inside a function body run after both modules
  are initialised and are not counted.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(REPO_ROOT.glob("packages/*/src/tttv2/**/*.py"))
#: the one file allowed to read torch.nn.Module internals (torch has no public API for them)
ADAPTER = "packages/tttv2-core/src/tttv2/core/torch_internals.py"
#: reads in files another engineer owns this release (the weights rewrite, the runtime move);
#: each must still exist (the list only shrinks) and goes when its file is reworked
KNOWN = {
    "packages/tttv2-blocks/src/tttv2/blocks/weights/loading.py: mod._non_persistent_buffers_set",
    "packages/tttv2-serve/src/tttv2/serve/runtime/engine.py: first._base",
    "packages/tttv2-serve/src/tttv2/serve/runtime/engine.py: r._base",
}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _annotation_nodes(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        annotations = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
            annotations = [a.annotation for a in every if a is not None] + [node.returns]
        elif isinstance(node, ast.AnnAssign):
            annotations = [node.annotation]
        for annotation in annotations:
            if annotation is not None:
                ids.update(id(n) for n in ast.walk(annotation))
    return ids


def _defined_here(tree: ast.AST) -> set[str]:
    """Private names a class of this file defines (methods, class attributes, self._x = ...)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(item.name)
                for target in getattr(item, "targets", [getattr(item, "target", None)]):
                    if isinstance(target, ast.Name):
                        names.add(target.id)
                    if isinstance(target, ast.Tuple):  # __slots__-style tuples are not names
                        continue
                if isinstance(item, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "__slots__" for t in item.targets
                ):
                    names.update(
                        c.value for c in ast.walk(item.value) if isinstance(c, ast.Constant)
                    )
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                names.add(node.attr)
    return names


def private_reads(path: Path, source: str) -> Iterator[str]:
    tree = ast.parse(source)
    skip, own = _annotation_nodes(tree), _defined_here(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            for alias in node.names:
                if _private(alias.name):
                    yield f"from {node.module} import {alias.name}"
        if not isinstance(node, ast.Attribute) or not _private(node.attr) or id(node) in skip:
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        if (
            isinstance(owner, ast.Call)
            and isinstance(owner.func, ast.Name)
            and owner.func.id == "super"
        ):
            continue
        if node.attr in own:
            continue
        yield ast.unparse(node)


def test_no_module_reads_another_modules_private_attributes() -> None:
    found = set()
    for path in SOURCES:
        rel = path.relative_to(REPO_ROOT).as_posix()
        if rel == ADAPTER:
            continue
        found.update(f"{rel}: {read}" for read in private_reads(path, path.read_text()))
    assert found - KNOWN == set(), (
        "private reads of another module (use a public API):\n" + "\n".join(sorted(found - KNOWN))
    )
    assert KNOWN - found == set(), f"gone, drop from KNOWN: {sorted(KNOWN - found)}"


def test_the_private_read_check_finds_what_it_must() -> None:
    bad = "import torch\nclass A:\n    def f(self, m):\n        return m._modules, torch._C\nfrom x import _y\n"
    assert sorted(private_reads(Path("x.py"), bad)) == [
        "from x import _y",
        "m._modules",
        "torch._C",
    ]
    fine = (
        "import argparse\nclass A:\n    _k = 1\n    def __init__(self):\n        self._v = 0\n"
        "    def g(self, other: argparse._SubParsersAction) -> None:\n"
        "        return self._v, other._v, other._k, super()._apply, other.__dict__\n"
    )
    assert list(private_reads(Path("x.py"), fine)) == []


def _module_name(path: Path) -> str:
    parts = (
        path.relative_to(path.parents[len(path.parts) - 1 - path.parts.index("src")])
        .with_suffix("")
        .parts[1:]
    )
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_level(node: ast.AST) -> Iterator[ast.AST]:
    """Every node outside function bodies."""
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield child
            yield from _module_level(child)


def import_graph(sources: dict[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """``{module: modules it imports}`` among ``sources`` (``{name: (source, is_package)}``);
    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module, else ``pkg``."""
    graph: dict[str, set[str]] = {name: set() for name in sources}
    for name, (source, is_package) in sources.items():
        package = name if is_package else name.rpartition(".")[0]
        for node in _module_level(ast.parse(source)):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in sources else base
                    for a in node.names
                ]
            graph[name].update(t for t in targets if t in sources and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_in_packages() -> None:
    sources = {_module_name(p): (p.read_text(), p.name == "__init__.py") for p in SOURCES}
    assert cycles(import_graph(sources)) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    sources = {
        "p": ("", True),
        "p.a": ("from p.b import thing\n", False),
        "p.b": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from p import a\n",
            False,
        ),
        "p.c": ("import p.a\n", False),
        "p.d": ("def f():\n    import p.e\n", False),
        "p.e": ("import p.d\n", False),
    }
    assert cycles(import_graph(sources)) == [["p.a", "p.b"]]
