"""Old import paths of modules that moved, kept importable with a ``DeprecationWarning``.

A package that moves a public module calls :func:`alias_moved_modules` once (in its
``__init__``) with ``{old dotted name: new dotted name}``. Importing an old name then
imports the new module, warns once per process, and binds the old name to the same module
object, so ``from old.path import Name`` keeps working until the next major release drops
the alias.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Mapping
from types import ModuleType


class _MovedLoader(importlib.abc.Loader):
    def __init__(self, new: str, note: str) -> None:
        self.new, self.note = new, note

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{spec.name} moved to {self.new}; import it from there ({self.note})",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(self.new)

    def exec_module(self, module: ModuleType) -> None:
        """The new module is already executed."""


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the old names of moved modules (see the module docstring)."""

    def __init__(self, moved: Mapping[str, str], note: str) -> None:
        self.moved, self.note = dict(moved), note

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        new = self.moved.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedLoader(new, self.note))


def alias_moved_modules(
    moved: Mapping[str, str], note: str = "the old path goes at the next major release"
) -> None:
    """Keep each old module name in ``moved`` importable as its new module (see the module docstring)."""
    sys.meta_path.append(MovedModuleFinder(moved, note))
